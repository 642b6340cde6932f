"""The one place that knows every admission plugin: name -> how to build it.

Built-in plugins are imported lazily, so a configuration names only what it uses. `register`
is Kubernetes' plugins.Register: the built-ins go through it, and so can a plugin of a program
that embeds gatekeeper (registered before the chain is built; it runs after the built-ins).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from gatekeeper.admission.plugin import (
    PROJECTED,
    SECRET,
    TOKEN_VOLUME_MODES,
    Plugin,
    PluginFactory,
    PluginOptions,
)
from gatekeeper.errors import InvalidInput

__all__ = ["KNOWN_PLUGINS", "PROJECTED", "SECRET", "TOKEN_VOLUME_MODES", "PluginOptions", "UnknownPlugin"]


class UnknownPlugin(InvalidInput):
    """A plugin name that is not registered."""


_FACTORIES: dict[str, Callable[[], PluginFactory]] = {}


def register(name: str, factory: PluginFactory) -> None:
    """Make `name` enableable; `factory(options)` builds the plugin (a plugin class is one)."""
    _add(name, lambda: factory)


def _add(name: str, load: Callable[[], PluginFactory]) -> None:
    if name in _FACTORIES:
        raise ValueError(f"admission plugin {name} is already registered")
    _FACTORIES[name] = load


def _builtin(module_name: str, class_name: str) -> Callable[[], PluginFactory]:
    def load() -> PluginFactory:
        module = importlib.import_module(f"gatekeeper.admission.plugins.{module_name}")
        factory: PluginFactory = getattr(module, class_name)
        return factory

    return load


# Kubernetes' recommended order (pkg/kubeapiserver/options/plugins.go, AllOrderedPlugins);
# the chain runs enabled plugins in this order whatever order the flag lists them in.
for _name, _module in (
    ("NamespaceLifecycle", "namespace_lifecycle"),
    ("NamespaceExists", "namespace_exists"),
    ("SecurityContextDeny", "security_context_deny"),
    ("LimitRanger", "limit_ranger"),
    ("ServiceAccount", "service_account"),
    ("ResourceQuota", "resource_quota"),
):
    _add(_name, _builtin(_module, _name))
KNOWN_PLUGINS: tuple[str, ...] = tuple(_FACTORIES)
"""The built-in plugins, in the order the chain runs them."""


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """The enabled names in registration order; UnknownPlugin lists the known ones."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in _FACTORIES]
    if unknown:
        raise UnknownPlugin(
            f"unknown admission plugin(s) {', '.join(unknown)}; known plugins: {', '.join(_FACTORIES)}"
        )
    return tuple(n for n in _FACTORIES if n in wanted)


def build_plugins(names: Iterable[str], options: PluginOptions | None = None) -> list[Plugin]:
    built = options or PluginOptions()
    return [_FACTORIES[name]()(built) for name in check_names(names)]


def parse_plugin_list(value: str) -> tuple[str, ...]:
    """A comma-separated flag value ("NamespaceLifecycle,LimitRanger") as a list of names."""
    return tuple(part.strip() for part in value.split(",") if part.strip())
