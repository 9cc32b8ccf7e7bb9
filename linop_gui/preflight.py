"""What must hold before the desktop app starts, checked without Qt so a failure is one clear line, not an abort:
a display to open the window on, the system libraries Qt's X11 (xcb) platform plugin links against, and a path the
app can open.

The missing libraries are found the way the loader finds them: ``ldd`` on PySide6's ``libqxcb.so`` (which follows
the plugin's own Qt libraries too) lists each soname it cannot resolve; :data:`DEBIAN_PACKAGES` maps a soname to
the Debian / Ubuntu package that ships it (``apt-file search`` is asked for one the table lacks, where installed).

``python -m linop_gui.preflight`` prints what is missing and the one command that installs it;
``--install`` runs that command when it can (root with apt-get), as ``make setup`` and ``.ci/run`` do.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# soname -> Debian package (bookworm; the same names on Ubuntu 22.04 / 24.04).
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's X11 platform plugin, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(library: Path) -> list[str]:
    """Sonames ``ldd`` cannot resolve for ``library`` (and what it links), in order, each once; [] without ldd."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=60).stdout
    return list(dict.fromkeys(_NOT_FOUND.findall(out)))


def packages_for(sonames: Sequence[str]) -> tuple[list[str], list[str]]:
    """(Debian packages that ship ``sonames``, sonames no package was found for)."""
    packages: list[str] = []
    unknown: list[str] = []
    for soname in sonames:
        package = DEBIAN_PACKAGES.get(soname) or _apt_file(soname)
        if package is None:
            unknown.append(soname)
        elif package not in packages:
            packages.append(package)
    return packages, unknown


def _apt_file(soname: str) -> str | None:
    apt_file = shutil.which("apt-file")
    if apt_file is None:
        return None
    proc = subprocess.run([apt_file, "search", "--regexp", f"/{re.escape(soname)}$"], capture_output=True, text=True,
                          timeout=120)
    first = proc.stdout.split("\n", 1)[0]
    return first.split(":", 1)[0].strip() or None


def install_command(packages: Sequence[str]) -> str:
    sudo = "" if _is_root() else "sudo "
    return f"{sudo}apt-get install -y {' '.join(packages)}"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class QtLibraries:
    """What Qt's xcb plugin lacks on this machine."""

    missing: tuple[str, ...]
    packages: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        """One line: what is missing and the command that installs it."""
        text = f"Qt's X11 platform plugin needs system libraries that are missing ({', '.join(self.missing)})"
        if self.packages:
            text += f"; install them with: {install_command(self.packages)}"
        if self.unknown:
            text += f"; no Debian package known for {', '.join(self.unknown)} (try: apt-file search <name>)"
        return text


def check_qt_libraries(plugin: Path | None = None) -> QtLibraries:
    plugin = plugin or xcb_plugin()
    missing = missing_libraries(plugin) if plugin is not None else []
    packages, unknown = packages_for(missing)
    return QtLibraries(tuple(missing), tuple(packages), tuple(unknown))


# ----------------------------------------------------------------------------------------------- display


def uses_xcb(env: Mapping[str, str]) -> bool:
    """True when Qt will open its windows through X11: no other platform asked for and no Wayland session."""
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0]
    if platform:
        return platform == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland")


def has_display(env: Mapping[str, str]) -> bool:
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0]
    if platform in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return True
    if platform == "wayland":
        return bool(env.get("WAYLAND_DISPLAY"))
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


NO_DISPLAY = ("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): start it from a desktop "
              "session or with ssh -X; without a screen, 'linop-gui --demo --screenshot shot.png' renders offscreen "
              "and 'make demo-data' writes the demo datasets")


def display_problem(env: Mapping[str, str], *, screenshot: bool) -> str | None:
    """Why the window cannot open here, as one line, or None. A screenshot needs no display (offscreen)."""
    if screenshot or sys.platform != "linux":
        return None
    if not has_display(env):
        return NO_DISPLAY
    if uses_xcb(env) and env.get("DISPLAY"):
        libraries = check_qt_libraries()
        if not libraries.ok:
            return libraries.message()
    return None


# ----------------------------------------------------------------------------------------------- paths


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be opened (missing, or a file that is not DICOM), as one line naming it, or None."""
    target = Path(path).expanduser()
    if not target.exists():
        return f"{target}: does not exist; give a VinDr-Mammo / VinDr-CXR root, a folder of DICOM files or a DICOM file"
    if target.is_file():
        from linop_core.dicom import read_dicom_meta
        from linop_core.errors import DicomError

        try:
            read_dicom_meta(target)
        except DicomError as exc:
            return f"{exc}; open a DICOM file, a folder of DICOM files or a VinDr root"
    return None


# ----------------------------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linop_gui.preflight",
                                     description="Check (and with --install, install) what Qt's X11 plugin needs.")
    parser.add_argument("--install", action="store_true",
                        help="install the missing Debian packages with apt-get (root only; else print the command)")
    args = parser.parse_args(argv)
    plugin = xcb_plugin()
    if plugin is None:
        print("preflight: PySide6's xcb plugin (libqxcb.so) is not installed; nothing to check")
        return 0
    libraries = check_qt_libraries(plugin)
    if libraries.ok:
        print(f"preflight: every library of {plugin.name} resolves")
        return 0
    print(f"preflight: {libraries.message()}")
    if not args.install or not libraries.packages:
        return 0 if args.install else 1
    if not (_is_root() and shutil.which("apt-get")):
        print(f"preflight: not root (or no apt-get): run {install_command(libraries.packages)}")
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", *libraries.packages]
    if subprocess.run(command, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env)
        if subprocess.run(command, env=env).returncode != 0:
            print(f"preflight: the install failed; run {install_command(libraries.packages)}")
            return 1
    still = check_qt_libraries(plugin)
    print("preflight: installed " + " ".join(libraries.packages) + ("" if still.ok else f"; {still.message()}"))
    return 0 if still.ok else 1


if __name__ == "__main__":
    sys.exit(main())
