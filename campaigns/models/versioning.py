from django.db import models


class Versioned(models.Model):
    """A row whose every save raises its version: a batch records the versions it was generated from,
    so an approval can tell that what it approved has changed since."""

    version = models.PositiveIntegerField(default=1, editable=False, help_text="Raised by every change.")

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk:
            stored = type(self).objects.filter(pk=self.pk).values_list("version", flat=True).first()
            self.version = (stored or 0) + 1
        super().save(*args, **kwargs)
