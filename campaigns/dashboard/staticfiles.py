"""Serves plotly.js from the installed `plotly` package as the static file vendor/plotly.min.js.

The file is never copied into the repository: pip installs it (pinned in requirements.txt), this finder
makes `{% static "vendor/plotly.min.js" %}` find it, and collectstatic copies it for production.
"""

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

STATIC_PATH = "vendor/plotly.min.js"


def plotly_js_dir():
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs):
        if not (plotly_js_dir() / "plotly.min.js").exists():  # pragma: no cover - a broken install
            from django.core.checks import Error

            return [Error("plotly is installed without package_data/plotly.min.js", id="campaigns.E001")]
        return []

    def find(self, path, find_all=False, **kwargs):
        if path != STATIC_PATH:
            return [] if find_all or kwargs.get("all") else None
        found = str(plotly_js_dir() / "plotly.min.js")
        return [found] if find_all or kwargs.get("all") else found

    def list(self, ignore_patterns):
        storage = FileSystemStorage(location=plotly_js_dir())
        storage.prefix = "vendor"  # collectstatic puts the file at vendor/plotly.min.js
        yield "plotly.min.js", storage
