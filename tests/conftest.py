"""Shared, generic test fixtures: real DICOM samples, a small DICOM writer, and a throw-away Orthanc server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

# Digital Mammography X-Ray Image Storage - For Presentation
MAMMO_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.1.2")


def _testdata_file(name: str) -> str:
    """A file from pydicom's bundled test data or the pydicom-data package (never downloaded)."""
    pytest.importorskip("data_store", reason="pydicom-data (dev dependency) provides the real radiographs")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed with pydicom / pydicom-data")
    return str(path)


@pytest.fixture(scope="session")
def testdata_file() -> Callable[[str], str]:
    """Resolve a pydicom / pydicom-data test file by name, e.g. ``testdata_file("MR_small_RLE.dcm")``."""
    return _testdata_file


@pytest.fixture(scope="session")
def rg1_path() -> str:
    """Real PA chest radiograph (CR, MONOCHROME1, 1955x1841, 15 bits) from pydicom-data."""
    return _testdata_file("RG1_UNCR.dcm")


@pytest.fixture(scope="session")
def rg1_j2k_path() -> str:
    """The same chest radiograph as RG1_UNCR, JPEG 2000 lossless."""
    return _testdata_file("RG1_J2KR.dcm")


def make_dicom_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    **elements: Any,
) -> FileDataset:
    """A single-frame greyscale mammogram dataset (native Explicit VR Little Endian) around ``pixels``.

    ``pixels`` is (H, W) uint8/uint16/int16; extra ``elements`` are DICOM keywords set on the dataset
    (a value of None deletes the element, e.g. ``PixelSpacing=None``).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MAMMO_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "MG"
    ds.Manufacturer = "LINOP test"
    ds.ManufacturerModelName = "synthetic"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = "L"
    ds.ViewPosition = "CC"
    ds.PixelSpacing = [0.1, 0.1]
    array = np.ascontiguousarray(pixels)
    bits = bits_stored if bits_stored is not None else array.dtype.itemsize * 8
    ds.set_pixel_data(array, photometric_interpretation=photometric, bits_stored=bits)
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


@pytest.fixture
def write_dicom(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic greyscale DICOM: ``write_dicom(pixels, name="x.dcm", photometric=..., **elements)``.

    Pass ``dataset=`` to write a prepared dataset instead (e.g. a compressed one from ``dicom_dataset``).
    """

    def write(
        pixels: np.ndarray | None = None,
        name: str = "image.dcm",
        *,
        dataset: Dataset | None = None,
        **kwargs: Any,
    ) -> Path:
        ds = dataset if dataset is not None else make_dicom_dataset(pixels, **kwargs)  # type: ignore[arg-type]
        path = tmp_path / name
        ds.save_as(path, enforce_file_format=True)
        return path

    return write


@pytest.fixture(scope="session")
def dicom_dataset() -> Callable[..., FileDataset]:
    """The dataset builder behind ``write_dicom``, for tests that change the dataset before writing."""
    return make_dicom_dataset


@pytest.fixture(scope="session")
def mammo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-study phantom VinDr-Mammo root (8 images, both splits, masses in both), made once per session."""
    from linop_core.phantom import make_mammo_dataset

    root = tmp_path_factory.mktemp("phantom") / "mammo"
    make_mammo_dataset(root, n=2, seed=0)
    return root


@pytest.fixture
def dicom_folder(mammo_root: Path, tmp_path: Path) -> Path:
    """A plain folder: two readable DICOM files, one that is not DICOM at all and one cut in half."""
    folder = tmp_path / "folder"
    folder.mkdir()
    files = sorted(mammo_root.glob("images/*/*.dicom"))[:2]
    for i, src in enumerate(files):
        shutil.copy(src, folder / f"good{i}.dcm")
    (folder / "notes.dcm").write_bytes(b"this is not a DICOM file\n" * 20)
    data = files[0].read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 3])
    return folder


# ------------------------------------------------------------------------------------------ Orthanc (DICOMweb)

ORTHANC_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc", "/usr/local/share/orthanc/plugins")
ORTHANC_USER = ("linop", "linop-test-password")


@dataclass
class OrthancServer:
    """A throw-away Orthanc on 127.0.0.1 with the DICOMweb plugin (``dicomweb_url``), storage in a temp folder."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    auth: tuple[str, str] | None = None

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, path: Path) -> None:
        """Store one DICOM file through Orthanc's own REST API (POST /instances)."""
        response = requests.post(f"{self.url}/instances", data=path.read_bytes(), auth=self.auth, timeout=30)
        response.raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _dicomweb_plugin() -> Path | None:
    for folder in ORTHANC_PLUGIN_DIRS:
        found = sorted(Path(folder).glob("libOrthancDicomWeb.so*")) if Path(folder).is_dir() else []
        if found:
            return found[0]
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_orthanc(folder: Path, *, users: dict[str, str] | None = None) -> OrthancServer:
    """Start Orthanc with a JSON config written into ``folder`` (HTTP only, on a free localhost port; no DICOM
    port; remote access off; basic auth for ``users`` when given). Skips the test where Orthanc is absent."""
    binary, plugin = shutil.which("Orthanc"), _dicomweb_plugin()
    if binary is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (Debian: apt-get install orthanc "
                    "orthanc-dicomweb; .ci/run installs them)")  # fmt: skip
    auth = next(iter(users.items())) if users else None
    for _attempt in range(3):  # another process may take the free port between the probe and Orthanc's bind
        port = _free_port()
        config = {
            "Name": "LINOP-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(users),
            "RegisteredUsers": users or {},
            "Plugins": [str(plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
        }
        config_path = folder / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        log = folder / "orthanc.log"
        with log.open("wb") as handle:
            process = subprocess.Popen([binary, str(config_path)], stdout=handle, stderr=subprocess.STDOUT,
                                       cwd=folder)  # fmt: skip
        server = OrthancServer(f"http://127.0.0.1:{port}", process, log, auth)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{server.url}/system", auth=auth, timeout=2).status_code == 200:
                    return server
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        server.stop()
        if "already in use" not in log.read_text(errors="replace"):
            break
    raise RuntimeError(f"Orthanc did not start; see {log}:\n{log.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc (no authentication) for the whole session; tests add what they need (``upload``)."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def orthanc_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc that accepts only basic auth as ``ORTHANC_USER``."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-auth"), users=dict([ORTHANC_USER]))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc (no authentication) of one test module's own, for tests that load and store studies which
    the session's server (``orthanc``) must not see."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-module"))
    yield server
    server.stop()
