"""The fake Postmark's outbox as pages a person reads (stdlib only): what "Postmark" was sent, in a browser.

    GET /_fake/                     the messages, newest first; ?q= keeps those whose To contains it
    GET /_fake/messages/<MessageID> one message: its headers, its HTML (in a sandboxed frame) and its text

The HTML is shown inside an <iframe sandbox srcdoc=...>: scripts in it never run, and its links open in a
new tab, so a demo user can follow a message's tracked links as a customer would.
"""

from html import escape

SHOWN = 200  # the newest messages a list shows (the JSON outbox has them all)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
th { background: #f3f3f3; }
.quiet { color: #777; font-size: .9em; }
iframe { width: 100%; height: 32em; border: 1px solid #ccc; }
pre { white-space: pre-wrap; background: #fafafa; border: 1px solid #e5e5e5; padding: .8em; }
form { margin: 1em 0; }
"""


def _page(title, body):
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def outbox_page(messages, query=""):
    """The list: newest first, filtered by an address fragment."""
    wanted = query.strip().lower()
    found = [m for m in reversed(messages) if wanted in str(m.get("To", "")).lower()]
    rows = "".join(
        f'<tr class="message"><td>{escape(m["SubmittedAt"][:19].replace("T", " "))}</td>'
        f"<td>{escape(str(m['To']))}</td>"
        f'<td><a href="/_fake/messages/{escape(m["MessageID"])}">{escape(m["Subject"] or "(no subject)")}</a></td>'
        f"<td>{escape(m['Tag'] or '')}</td></tr>"
        for m in found[:SHOWN]
    )
    more = f'<p class="quiet">The newest {SHOWN} of {len(found)} are shown.</p>' if len(found) > SHOWN else ""
    empty = "" if found else '<p id="outbox-empty">No message' + (" matches." if wanted else " yet.") + "</p>"
    body = (
        "<h1>Fake Postmark: outbox</h1>"
        f'<p class="quiet">{len(messages)} message(s) accepted since this fake started. '
        'JSON: <a href="/_fake/outbox">/_fake/outbox</a>.</p>'
        f'<form method="get" action="/_fake/"><label>Address <input name="q" id="outbox-search" '
        f'value="{escape(query)}" placeholder="household-123@"></label> <button>Search</button> '
        '<a href="/_fake/">all</a></form>'
        f"{empty}<table><thead><tr><th>Sent (UTC)</th><th>To</th><th>Subject</th><th>Tag</th></tr></thead>"
        f'<tbody id="outbox-rows">{rows}</tbody></table>{more}'
    )
    return _page("Fake Postmark: outbox", body)


def message_page(message):
    """One message: headers, metadata, the HTML as a recipient's mail program shows it, the text part."""
    headers = [
        ("From", message["From"]),
        ("To", message["To"]),
        ("Subject", message["Subject"]),
        ("Tag", message["Tag"]),
        ("Message stream", message["MessageStream"]),
        ("MessageID", message["MessageID"]),
        ("Submitted at", message["SubmittedAt"]),
        *[(h.get("Name", ""), h.get("Value", "")) for h in message.get("Headers", [])],
        *[(f"Metadata {key}", value) for key, value in message.get("Metadata", {}).items()],
    ]
    rows = "".join(f"<tr><th>{escape(str(n))}</th><td>{escape(str(v))}</td></tr>" for n, v in headers)
    html = '<base target="_blank">' + (message.get("HtmlBody") or "<p>(no HTML part)</p>")
    body = (
        '<p><a href="/_fake/">← outbox</a></p>'
        f"<h1>{escape(message['Subject'] or '(no subject)')}</h1>"
        f'<table id="message-headers">{rows}</table>'
        "<h2>HTML</h2>"
        f'<iframe id="message-html" sandbox="allow-popups allow-popups-to-escape-sandbox" '
        f'srcdoc="{escape(html, quote=True)}"></iframe>'
        f'<h2>Text</h2><pre id="message-text">{escape(message.get("TextBody") or "(no text part)")}</pre>'
    )
    return _page(message["Subject"] or "message", body)


def not_found_page(message_id):
    return _page("Not found", f'<p>No message {escape(message_id)}. <a href="/_fake/">The outbox</a></p>')
