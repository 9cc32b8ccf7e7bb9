"""DICOMweb against a real Orthanc (started by the ``orthanc`` fixtures in conftest): browse (QIDO-RS), retrieve
into the cache (WADO-RS), synthesise from what was retrieved, export to DICOM, store back (STOW-RS) and find the
synthetic series; and the one-line errors (closed port, refused credentials, a study without images, a STOW
rejection)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from linop_core.anatomy import breast_mask
from linop_core.cli.data import main as data_main
from linop_core.cli.export import main as export_main
from linop_core.dicom import read_dicom
from linop_core.dicom_export import export_dicom
from linop_core.dicomweb import (
    TOKEN_ENV,
    DicomwebAuth,
    DicomwebError,
    DicomwebServer,
    StudyQuery,
    retrieve_study,
    search_studies,
    store_files,
)
from linop_core.engines import BiharmonicEngine
from linop_core.phantom import make_mammo_dataset
from linop_core.synthesis import InpaintRequest, inpaint_lesion
from linop_core.synthset import SourceDicom, SourceInfo, SynthSample, SynthSetWriter
from linop_core.synthset.plan import MassBoxModel, sample_mass_box, unit_rng


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`linop-data phantom mammo --n 2`: two four-view studies."""
    root = tmp_path_factory.mktemp("phantom")
    make_mammo_dataset(root, 2, 0, "small")
    return root


@pytest.fixture(scope="module")
def loaded(orthanc: Any, phantom_root: Path) -> Any:
    """The session's Orthanc with the phantom studies and one study that holds only a text SR."""
    for path in sorted(phantom_root.rglob("*.dicom")):
        orthanc.upload(path)
    sr = _dataset(BasicTextSRStorage, Modality="SR", PatientID="SR-ONLY", StudyInstanceUID=generate_uid(),
                  SeriesInstanceUID=generate_uid())  # fmt: skip
    path = phantom_root.parent / "report.dcm"
    sr.save_as(path, enforce_file_format=True)
    orthanc.upload(path)
    return orthanc


def _dataset(sop_class: str, **elements: object) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def _phantom_headers(root: Path) -> list[Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(root.rglob("*.dicom"))]


def test_qido_finds_studies_by_modality_patient_study_and_date(loaded: Any, phantom_root: Path) -> None:
    server = DicomwebServer(loaded.dicomweb_url)
    headers = _phantom_headers(phantom_root)
    mammo = search_studies(server, StudyQuery(modality="MG"))
    assert {s.study_uid for s in mammo} == {h.StudyInstanceUID for h in headers}
    first = headers[0]
    (by_patient,) = search_studies(server, StudyQuery(patient_id=str(first.PatientID)))
    assert by_patient.study_uid == first.StudyInstanceUID and by_patient.modalities == ("MG",)
    assert by_patient.n_instances == 4 and sum(s.n_instances for s in by_patient.series) == 4
    assert {s.modality for s in by_patient.series} == {"MG"}
    wildcard = search_studies(server, StudyQuery(patient_name=str(first.PatientName)[:-3] + "*"), with_series=False)
    assert [s.study_uid for s in wildcard] == [first.StudyInstanceUID]
    (by_uid,) = search_studies(server, StudyQuery(study_uid=first.StudyInstanceUID))
    assert by_uid.patient_id == first.PatientID
    dated = search_studies(server, StudyQuery(date=f"{first.StudyDate}-{first.StudyDate}"), with_series=False)
    assert first.StudyInstanceUID in {s.study_uid for s in dated}
    assert search_studies(server, StudyQuery(modality="CT")) == []


def test_wado_retrieves_a_study_into_a_cache_that_opens_as_a_folder(loaded: Any, phantom_root: Path,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    from linop_core.catalog import Catalog  # the folder catalog the GUI browses

    server = DicomwebServer(loaded.dicomweb_url)
    originals = {h.SOPInstanceUID: p for h, p in zip(_phantom_headers(phantom_root),
                                                      sorted(phantom_root.rglob("*.dicom")), strict=True)}  # fmt: skip
    study_uid = pydicom.dcmread(next(iter(originals.values())), stop_before_pixels=True).StudyInstanceUID
    progress: list[tuple[int, int]] = []
    first = retrieve_study(server, study_uid, tmp_path / "cache", progress=lambda d, t: progress.append((d, t)))
    assert (first.n_downloaded, first.n_cached, len(first.files)) == (4, 0, 4) and progress[-1] == (4, 4)
    for path in first.files:
        assert np.array_equal(read_dicom(path).pixels, read_dicom(originals[path.stem]).pixels)
    again = retrieve_study(server, study_uid, tmp_path / "cache")
    assert (again.n_downloaded, again.n_cached) == (0, 4)
    catalog = Catalog.open(first.folder)
    assert len(catalog) == 4 and all(entry.ok for entry in catalog.entries)


def _synthesise(files: list[Path], out: Path) -> Path:
    """A small synthetic set from retrieved images (the Python API behind `linop-export generate`)."""
    engine = BiharmonicEngine(resolution=64)
    writer = SynthSetWriter(out, config={"source": "dicomweb test"}, box_label_names=("Mass",))
    for unit, path in enumerate(files):
        image = read_dicom(path)
        rng = unit_rng(0, unit)
        breast = breast_mask(image.pixels, padding_mask=image.padding_mask)
        box = sample_mass_box(rng, MassBoxModel(np.zeros((0, 4))), breast, image_name=path.name)
        (cand,) = inpaint_lesion(image, InpaintRequest(box=box, seeds=(unit,)), engine, image_name=path.name)
        meta = image.meta
        source = SourceInfo(dataset="mammo", image_id=str(meta.sop_instance_uid), study_id=f"pacs-study-{unit // 4}",
                            split="training", laterality=meta.laterality, view=meta.view_position,
                            pixel_spacing_mm=meta.pixel_spacing_mm, dicom=SourceDicom.from_image(image))  # fmt: skip
        writer.commit(unit, [SynthSample(unit, cand, image.pixels, source)])
    writer.finish()
    return out


@pytest.mark.slow
def test_retrieve_generate_export_store_back_and_find(loaded: Any, phantom_root: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    server = DicomwebServer(loaded.dicomweb_url)
    study_uid = _phantom_headers(phantom_root)[0].StudyInstanceUID
    retrieved = retrieve_study(server, study_uid, tmp_path / "cache")
    set_path = _synthesise(sorted(retrieved.files)[:2], tmp_path / "set.h5")
    export = export_dicom(set_path, tmp_path / "dicom")
    stored = store_files(server, export.files)
    assert stored.n_stored == 4 and len(stored.study_uids) == 1
    (found,) = search_studies(server, StudyQuery(study_uid=stored.study_uids[0]))
    assert found.patient_name == "SYNTHETIC^LINOP" and set(found.modalities) == {"MG", "SEG"}
    by_modality = {s.modality: s for s in found.series}
    assert by_modality["MG"].n_instances == 2 and by_modality["SEG"].n_instances == 2
    assert by_modality["MG"].description.startswith("SYNTHETIC")
    assert found.study_uid in {s.study_uid for s in search_studies(server, StudyQuery(patient_name="SYNTHETIC*"))}
    back = retrieve_study(server, found.study_uid, tmp_path / "cache2")
    assert back.n_not_images == 2  # the SEGs are not radiographs
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in export.image_files}
    for path in back.files:
        ds = pydicom.dcmread(path)
        assert np.array_equal(ds.pixel_array, pydicom.dcmread(by_uid[ds.SOPInstanceUID]).pixel_array)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in {p.stem for p in retrieved.files}


def test_cli_lists_retrieves_and_stores(loaded: Any, phantom_root: Path, tmp_path: Path, capsys) -> None:
    url = loaded.dicomweb_url
    assert data_main(["inspect", "--dicomweb", url, "--modality", "MG", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["studies"]) >= 2 and all("MG" in s["modalities"] for s in report["studies"])
    patient = str(_phantom_headers(phantom_root)[0].PatientID)
    assert data_main(["inspect", "--dicomweb", url, "--patient", patient, "--retrieve", str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    assert f"patient {patient}" in text and "4 fetched" in text and len(list((tmp_path / "c").rglob("*.dcm"))) == 4
    set_path = _synthesise(sorted((tmp_path / "c").rglob("*.dcm"))[:1], tmp_path / "set.h5")
    assert export_main(["dicom", str(set_path), str(tmp_path / "out"), "--stow", url, "--no-progress"]) == 0
    assert f"stored 2 instance(s) on {url}" in capsys.readouterr().out


def _one_line(message: str, url: str) -> None:
    assert "\n" not in message and message.startswith(url)


def test_a_closed_port_is_one_line_naming_the_url_and_the_fix(tmp_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_free_port()}/dicom-web"
    with pytest.raises(DicomwebError) as caught:
        search_studies(DicomwebServer(url, timeout_s=5), StudyQuery())
    _one_line(str(caught.value), url)
    assert "cannot connect" in str(caught.value) and "check the URL" in str(caught.value)
    assert data_main(["inspect", "--dicomweb", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and url in err and "Traceback" not in err
    with pytest.raises(DicomwebError, match="not an http"):
        DicomwebServer("localhost:8042/dicom-web")


def test_refused_and_missing_credentials_say_which_variable_to_set(orthanc_with_auth: Any,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys) -> None:  # fmt: skip
    url = orthanc_with_auth.dicomweb_url
    user, password = orthanc_with_auth.auth
    with pytest.raises(DicomwebError, match=f"401.*refused the bearer token in {TOKEN_ENV}") as caught:
        search_studies(DicomwebServer(url, DicomwebAuth(token="not-a-valid-token")), StudyQuery())
    _one_line(str(caught.value), url)
    with pytest.raises(DicomwebError, match=f"401.*needs credentials; set {TOKEN_ENV}"):
        search_studies(DicomwebServer(url), StudyQuery())
    with pytest.raises(DicomwebError, match=f"refused user '{user}'"):
        search_studies(DicomwebServer(url, DicomwebAuth(user=user, password="wrong")), StudyQuery())
    env = {"LINOP_DICOMWEB_USER": user, "LINOP_DICOMWEB_PASSWORD": password}
    assert search_studies(DicomwebServer(url, DicomwebAuth.from_env(env)), StudyQuery()) == []
    monkeypatch.setenv(TOKEN_ENV, "not-a-valid-token")
    assert data_main(["inspect", "--dicomweb", url]) == 1
    assert TOKEN_ENV in capsys.readouterr().err


def test_a_study_without_images_is_refused_with_its_contents(loaded: Any, tmp_path: Path) -> None:
    server = DicomwebServer(loaded.dicomweb_url)
    (study,) = search_studies(server, StudyQuery(patient_id="SR-ONLY"), with_series=False)
    with pytest.raises(DicomwebError, match="holds no image .*Basic Text SR Storage") as caught:
        retrieve_study(server, study.study_uid, tmp_path / "cache")
    _one_line(str(caught.value), server.url)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DicomwebError, match="not on the server"):
        retrieve_study(server, "1.2.3.4.5.6.7", tmp_path / "cache")


def test_a_stow_rejection_names_the_file_and_keeps_it(loaded: Any, tmp_path: Path) -> None:
    broken = _dataset(SecondaryCaptureImageStorage, PatientID="BROKEN", Modality="OT")  # no study / series UID
    path = tmp_path / "broken.dcm"
    broken.save_as(path, enforce_file_format=True)
    before = path.read_bytes()
    server = DicomwebServer(loaded.dicomweb_url)
    with pytest.raises(DicomwebError, match=r"rejected 1 of 1 instance\(s\) \(first: broken.dcm") as caught:
        store_files(server, [path])
    _one_line(str(caught.value), server.url)
    assert "local files are kept" in str(caught.value) and path.read_bytes() == before
