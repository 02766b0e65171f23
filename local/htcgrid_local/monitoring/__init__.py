"""Monitoring of the local grid: a real Prometheus scraping the agents (``prometheus``), and
the Grafana dashboards' main panels drawn from it with matplotlib (``render``)."""
