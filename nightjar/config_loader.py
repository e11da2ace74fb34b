"""Layered configuration: `conf/base.yaml`, then `conf/<env>.yaml`, then `--set` overrides.

The merged document is validated once, at start-up, into `nightjar.config.Config`. String
values may reference environment variables as `${NAME}` or `${NAME:-default}`, which keeps
secrets and per-machine addresses out of the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nightjar.config import ENV_NAME, Config
from nightjar.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Free-form mappings whose own keys contain dots: `--set spark.settings.spark.ui.enabled=false`
# sets the key `spark.ui.enabled` inside `spark.settings`.
_FREE_FORM_SECTIONS = ("spark.settings",)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay strings until pydantic validates them,
    so `2026-02-30` is reported against its key instead of crashing the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def conf_dir() -> Path:
    """The folder holding `base.yaml` and the environment files (`NIGHTJAR_CONF_DIR` overrides)."""
    return Path(os.environ.get("NIGHTJAR_CONF_DIR", PROJECT_ROOT / "conf")).resolve()


def default_env() -> str:
    """The environment used when `--env` is not given: `NIGHTJAR_ENV`, else `local`."""
    return os.environ.get("NIGHTJAR_ENV") or "local"


def load_config(
    env: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    directory: Path | None = None,
) -> Config:
    """Load, layer, interpolate and validate the configuration.

    Args:
        env: environment name; `conf/<env>.yaml` is layered over `conf/base.yaml`.
        overrides: `dotted.key=value` strings; values are parsed as YAML scalars.
        directory: the configuration folder (defaults to `conf_dir()`).

    Raises:
        ConfigError: a missing or malformed file, a bad override, an unset variable or an
            invalid value; the message names the file or key and the reason.
    """
    env = env or default_env()
    directory = directory or conf_dir()
    if not ENV_NAME.match(env) or ".." in env:
        raise ConfigError(f"--env {env!r}: must be letters, digits, '.', '-' or '_'")
    env_file = directory / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"--env {env!r}: no file {env_file} (environments: {', '.join(known)})")
    document = _deep_merge(_read_yaml(directory / "base.yaml"), _read_yaml(env_file))
    for override in overrides:
        _apply_override(document, override)
    document = _interpolate(document, path="")
    document["env"] = env
    try:
        config = Config.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    return _resolve_paths(config, directory.parent)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        content = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({reason})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys, not {type(content).__name__}")
    return content


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(document: dict[str, Any], override: str) -> None:
    key, separator, raw_value = override.partition("=")
    if not separator or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {override!r}: expected dotted.key=value")
    try:
        value = yaml.load(raw_value, Loader=_Loader) if raw_value else ""
    except yaml.YAMLError:
        value = raw_value
    node = document
    parts = key.split(".")
    for section in _FREE_FORM_SECTIONS:
        if key.startswith(section + "."):
            parts = [*section.split("."), key[len(section) + 1 :]]
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _interpolate(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: references ${{{name}}}, which is not set in the environment")

    return _VARIABLE.sub(substitute, value)


def _describe(error: ValidationError) -> str:
    """One line naming each invalid key and why, from pydantic's structured errors."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {reason}")
    return "invalid configuration: " + "; ".join(problems)


def _resolve_paths(config: Config, project_root: Path) -> Config:
    """Make local paths absolute against the project root, so a job behaves the same from any cwd."""

    def absolute(location: str) -> str:
        if "://" in location or location.startswith("file:"):
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else (project_root / path).resolve())

    lake = config.lake.model_copy(
        update={
            "root": absolute(config.lake.root),
            "metastore_dir": absolute(config.lake.metastore_dir) if config.lake.metastore_dir else None,
        }
    )
    validation = config.validation
    if validation.gx_root:
        validation = validation.model_copy(update={"gx_root": absolute(validation.gx_root)})
    return config.model_copy(update={"lake": lake, "validation": validation})
