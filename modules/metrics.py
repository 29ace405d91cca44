"""Prometheus metrics for the whole server (prometheus-client, text format at /metrics).

Generations are counted where they end, in the scheduler, so the page's requests and the
API's are counted alike; the API adds its requests by route and status. Each server has
its own registry, so two servers in one process (tests) never mix their numbers.
"""
from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)
MODEL_LABELS = ("backend", "model")
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SPEED_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Metrics:
    def __init__(self, scheduler=None):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("api_requests", "API requests by route and HTTP status.",
                                ("route", "status"), registry=registry)
        self.generations = Counter("generations", "Generations ended, by how they ended.",
                                   (*MODEL_LABELS, "reason"), registry=registry)
        self.prompt_tokens = Counter("prompt_tokens", "Prompt tokens read.", MODEL_LABELS, registry=registry)
        self.generated_tokens = Counter("generated_tokens", "Tokens generated.", MODEL_LABELS, registry=registry)
        self.time_to_first_token = Histogram(
            "time_to_first_token_seconds", "Seconds from submission to the first token (queue wait included).",
            MODEL_LABELS, buckets=TTFT_BUCKETS, registry=registry)
        self.tokens_per_second = Histogram("tokens_per_second", "Generation speed of one reply.",
                                           MODEL_LABELS, buckets=SPEED_BUCKETS, registry=registry)
        if scheduler is not None:
            Gauge("queue_depth", "Requests waiting for a free slot.",
                  registry=registry).set_function(scheduler.queue_length)
            Gauge("model_loaded", "1 when a model is loaded.",
                  registry=registry).set_function(lambda: scheduler.backend is not None)

    def count_request(self, route: str, status: int) -> None:
        self.requests.labels(route, str(status)).inc()

    def observe_finished(self, request, info) -> None:
        """Called by the scheduler as a request ends (scheduler.on_finished)."""
        finished = request.finished
        if finished is None or info is None:
            return
        labels = (info.loader, info.name)
        self.generations.labels(*labels, finished.reason).inc()
        self.prompt_tokens.labels(*labels).inc(finished.prompt_tokens)
        self.generated_tokens.labels(*labels).inc(finished.n_tokens)
        if finished.time_to_first_token is not None:
            self.time_to_first_token.labels(*labels).observe(finished.time_to_first_token)
        if finished.tokens_per_second:
            self.tokens_per_second.labels(*labels).observe(finished.tokens_per_second)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
