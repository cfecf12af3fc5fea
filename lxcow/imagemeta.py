"""Metadata of imported images: Incus ``metadata.yaml`` and LXC ``config`` files.

An image's own LXC settings are untrusted input: only keys that cannot run anything on the
host are kept (no hooks, no mounts), and includes must name LXC's shipped config files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tarfile
from pathlib import Path

from lxcow.errors import BadData
from lxcow.log import get as get_logger

log = get_logger(__name__)

TEMPLATE_DIR = "/usr/share/lxc/config"
SAFE_KEYS = {
    "lxc.arch", "lxc.signal.halt", "lxc.signal.reboot", "lxc.signal.stop", "lxc.tty.max",
    "lxc.pty.max", "lxc.autodev", "lxc.include",
}
MAX_META_FILE = 1 << 20
INCLUDE = re.compile(r"(?:[a-z0-9]+\.)?(?:common|userns)\.conf")


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    architecture: str = ""
    description: str = ""
    lxc_config: str = ""


def _members(path: Path) -> list[tuple[str, bytes]]:
    """The small top-level metadata files of a tarball, stopping at the rootfs."""
    from lxcow.compression import decode_errors, open_decompressed

    found: list[tuple[str, bytes]] = []
    try:
        with open_decompressed(os.fspath(path)) as (stream, _):
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for m in tf:
                    name = m.name.removeprefix("./")
                    if name.startswith("rootfs"):
                        break
                    if name in ("metadata.yaml", "config") and m.isreg():
                        if m.size > MAX_META_FILE:
                            raise BadData(f"{path}: {name} is too large")
                        f = tf.extractfile(m)
                        found.append((name, f.read() if f else b""))
    except tarfile.TarError as err:
        raise BadData(f"{path}: damaged metadata archive: {err}") from None
    except decode_errors() as err:
        raise BadData(f"{path}: damaged metadata archive: {err}") from None
    return found


def is_unified(path: Path) -> bool:
    """A unified image tarball starts with metadata.yaml and keeps its tree under rootfs/."""
    from lxcow.compression import first_member

    return first_member(os.fspath(path)) == "metadata.yaml"


def read(path: Path) -> ImageMeta:
    files = dict(_members(path))
    meta = ImageMeta()
    if "metadata.yaml" in files:
        import yaml

        try:
            doc = yaml.safe_load(files["metadata.yaml"]) or {}
        except yaml.YAMLError as err:
            raise BadData(f"{path}: metadata.yaml is not valid YAML: {err}") from None
        if not isinstance(doc, dict):
            raise BadData(f"{path}: metadata.yaml is not a mapping")
        props = doc.get("properties") or {}
        meta = ImageMeta(
            architecture=str(doc.get("architecture", "")),
            description=str(props.get("description", "")) if isinstance(props, dict) else "",
        )
    if "config" in files:
        meta = dataclasses.replace(meta, lxc_config=filter_config(files["config"].decode()))
    return meta


def filter_config(text: str) -> str:
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in SAFE_KEYS:
            log.warning("ignoring image config line %r", line)
            continue
        if key == "lxc.include":
            value = value.replace("LXC_TEMPLATE_CONFIG", TEMPLATE_DIR)
            real = os.path.realpath(value) if os.path.isabs(value) else ""
            # Only the distributions' common settings: nesting.conf and the like loosen
            # the container's confinement, which is the administrator's choice, not an image's.
            if (os.path.dirname(real) != TEMPLATE_DIR or not INCLUDE.fullmatch(
                    os.path.basename(real)) or not os.path.isfile(real)):
                log.warning("ignoring image include %r", value)
                continue
        kept.append(f"{key} = {value}")
    return "".join(f"{line}\n" for line in kept)
