"""What the chain decided about one request: allowed or the refusal, the patch, the warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatekeeper.admission.errors import AdmissionDenied
from gatekeeper.admission.request import JSONObject


@dataclass(frozen=True, slots=True)
class Outcome:
    denied: AdmissionDenied | None = None
    patch: list[dict[str, Any]] = field(default_factory=list)  # RFC 6902 operations
    warnings: tuple[str, ...] = ()
    object: JSONObject | None = None  # the object after mutation (the original if none)
    plugin: str = ""  # the plugin that refused, for the audit log

    @property
    def allowed(self) -> bool:
        return self.denied is None
