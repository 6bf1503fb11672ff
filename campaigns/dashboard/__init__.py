"""The dashboard: the first page after login (campaigns and batches, funnel, money, uplift, over time)."""
