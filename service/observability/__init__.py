"""Prometheus metrics of requests, models and jobs."""
