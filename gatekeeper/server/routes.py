"""The route table: every path gatekeeper serves, its method, handler and who may call it.

The router (server/routing.py), the caller lists, the request metrics' endpoint labels and
/openapi.json are all derived from this one tuple.
"""

from __future__ import annotations

from gatekeeper.server import admission, authenticate, authorize, health, openapi, quota, scrape
from gatekeeper.server.caller import Access
from gatekeeper.server.metrics import CONTENT_TYPE
from gatekeeper.server.routing import Route

ADMISSION = "admission state"

ROUTES = (
    Route("GET", "/healthz", health.healthz, Access.ANYONE, "Liveness"),
    Route("GET", "/readyz", health.readyz, Access.ANYONE, "Readiness, with every watched file's reloads"),
    Route("POST", "/authorize", authorize.authorize, Access.WEBHOOK_CALLERS,
          "SubjectAccessReview webhook", openapi.SUBJECT_ACCESS_REVIEW),
    Route("POST", "/authenticate", authenticate.authenticate, Access.WEBHOOK_CALLERS,
          "TokenReview webhook", openapi.TOKEN_REVIEW),
    Route("POST", "/mutate", admission.mutate, Access.WEBHOOK_CALLERS,
          "Mutating admission webhook", openapi.ADMISSION_REVIEW, reads=ADMISSION),
    Route("POST", "/validate", admission.validate, Access.WEBHOOK_CALLERS,
          "Validating admission webhook", openapi.ADMISSION_REVIEW, reads=ADMISSION),
    Route("POST", "/admit", admission.admit, Access.WEBHOOK_CALLERS,
          "Mutating, then validating admission", openapi.ADMISSION_REVIEW, reads=ADMISSION),
    Route("GET", "/quota", quota.quota, Access.METRICS_READERS,
          "ResourceQuotas with their usage", query=("namespace",), reads="quota usage"),
    Route("GET", "/metrics", scrape.scrape, Access.METRICS_READERS,
          "Prometheus metrics", media_type=CONTENT_TYPE, reads="quota usage"),
    Route("GET", "/openapi.json", openapi.openapi, Access.EITHER, "This document"),
)
