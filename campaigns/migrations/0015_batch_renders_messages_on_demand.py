"""Messages are rendered on demand (campaigns/messages.py). Every batch generated before keeps its stored
bodies: its rows are marked `stored` (the column's default while it is added), then new batches default to
`on_demand`."""

from django.db import migrations, models


CHOICES = [('stored', 'bodies stored at generation'), ('on_demand', "rendered on demand from the batch's snapshot")]


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0014_recipient_send_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='batch',
            name='message_snapshot',
            field=models.JSONField(blank=True, default=dict, help_text='What messages show of the promotions, as at generation (messages.py).'),
        ),
        migrations.AddField(
            model_name='batch',
            name='rendering',
            field=models.CharField(choices=CHOICES, default='stored', max_length=16),
        ),
        migrations.AlterField(
            model_name='batch',
            name='rendering',
            field=models.CharField(choices=CHOICES, default='on_demand', max_length=16),
        ),
    ]
