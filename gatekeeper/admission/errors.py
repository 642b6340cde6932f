"""Admission refusals as values, worded as kube-apiserver words them (admission.NewForbidden)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gatekeeper.admission.request import AdmissionRequest
from gatekeeper.errors import Refused


@dataclass(frozen=True, slots=True)
class Cause:
    type: str
    message: str
    field: str


@dataclass
class AdmissionDenied(Refused):
    """A plugin's refusal: HTTP code, Kubernetes reason and the full message."""

    code: int
    reason: str
    message: str
    causes: list[Cause] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def object_name(request: AdmissionRequest) -> str:
    """request.name, else metadata.name, else metadata.generateName, else "Unknown"."""
    if request.name:
        return request.name
    metadata = (request.object or {}).get("metadata") or {}
    return str(metadata.get("name") or metadata.get("generateName") or "Unknown")


def qualified_resource(request: AdmissionRequest) -> str:
    group = request.resource.group
    return f"{request.resource.resource}.{group}" if group else request.resource.resource


def forbidden(request: AdmissionRequest, err: str, causes: list[Cause] | None = None) -> AdmissionDenied:
    message = f'{qualified_resource(request)} "{object_name(request)}" is forbidden: {err}'
    return AdmissionDenied(403, "Forbidden", message, causes or [])


def not_found(resource: str, name: str) -> AdmissionDenied:
    return AdmissionDenied(404, "NotFound", f'{resource} "{name}" not found')


def bad_request(message: str) -> AdmissionDenied:
    return AdmissionDenied(400, "BadRequest", message)


def internal(message: str) -> AdmissionDenied:
    return AdmissionDenied(500, "InternalError", message)
