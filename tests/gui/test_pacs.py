"""The PACS browser and DICOM out of the export dialog against a real Orthanc (``module_orthanc`` in conftest,
loaded here with phantom studies): search (QIDO-RS), retrieve into the cache (WADO-RS) and open in the main
window; one line for an unreachable server, a refused token and a study without images; the export dialog
writes DICOM image + SEG, stores them back (STOW-RS) and a search finds them; a refused store keeps the files."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from linop_core.catalog import Catalog
from linop_core.dicom import read_dicom
from linop_core.dicomweb import TOKEN_ENV, DicomwebServer, StudyQuery, search_series, search_studies
from linop_core.engines import BiharmonicEngine
from linop_core.phantom import make_mammo_dataset
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_core.synthesis import InpaintRequest, inpaint_lesion
from linop_gui.export_dialog import ExportDialog
from linop_gui.pacs import PacsBrowser, PacsSearch
from linop_gui.pacs_dialog import install_pacs
from linop_gui.worker import BackgroundWorker
from linop_gui.workspace import MessageLevel


@dataclass(frozen=True)
class LoadedPacs:
    url: str
    root: Path  # the phantom VinDr-Mammo root whose studies were loaded
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]  # of ``files``
    sr_patient: str


@pytest.fixture(scope="module")
def pacs(module_orthanc: Any, tmp_path_factory: pytest.TempPathFactory) -> LoadedPacs:
    """Two four-view phantom mammography studies and a study holding only a text report."""
    root = tmp_path_factory.mktemp("pacs-phantom") / "mammo"
    make_mammo_dataset(root, 2, 0, "small")
    files = sorted(root.rglob("*.dicom"))
    for path in files:
        module_orthanc.upload(path)
    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID = BasicTextSRStorage
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID = generate_uid()
    sr.StudyInstanceUID, sr.SeriesInstanceUID = generate_uid(), generate_uid()
    sr.Modality, sr.PatientID = "SR", "REPORT-ONLY"
    report = root.parent / "report.dcm"
    sr.save_as(report, enforce_file_format=True)
    module_orthanc.upload(report)
    headers = tuple(pydicom.dcmread(p, stop_before_pixels=True) for p in files)
    return LoadedPacs(module_orthanc.dicomweb_url, root, tuple(files), headers, "REPORT-ONLY")


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/dicom-web"


def _wait_idle(qtbot, dialog) -> None:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)


def _one_line(message: str, url: str) -> None:
    assert message.startswith(url) and "\n" not in message and "Traceback" not in message, message


def test_search_retrieve_and_open_in_the_main_window(qtbot, make_window, pacs: LoadedPacs, tmp_path: Path) -> None:
    window = make_window()
    controller = install_pacs(window, tmp_path / "cache" / "dicomweb", url=pacs.url, environ={})
    assert controller.action in window.menus.file.actions()
    dialog = controller.show_dialog(search=True)
    _wait_idle(qtbot, dialog)
    assert dialog.studies.rowCount() == 3 and "3 studies found" in dialog.message
    assert "none (anonymous)" in dialog.credentials_label.text() and TOKEN_ENV in dialog.credentials_label.text()
    cache = tmp_path / "cache" / "dicomweb" / "127.0.0.1_"
    assert str(cache) in dialog.cache_label.text()
    assert window.settings.dicomweb_url == pacs.url  # a URL that answered is remembered

    # Patient name with a wildcard, as the server holds it; the series of the selected study are listed.
    first = pacs.headers[0]
    dialog.patient_name_edit.setText(str(first.PatientName)[:-2] + "*")
    dialog.modality_combo.setCurrentText("MG")
    dialog.search()
    _wait_idle(qtbot, dialog)
    assert dialog.studies.rowCount() == 1
    assert dialog.studies.item(0, 1).text() == first.PatientID
    assert dialog.studies.item(0, 2).text() == str(first.PatientName)
    assert dialog.studies.item(0, 4).text() == "MG" and dialog.studies.item(0, 6).text() == "4"
    assert dialog.browser.selected is not None and dialog.browser.selected.study_uid == first.StudyInstanceUID
    qtbot.waitUntil(lambda: dialog.series_table.rowCount() > 0, timeout=10_000)
    assert {dialog.series_table.item(r, 1).text() for r in range(dialog.series_table.rowCount())} == {"MG"}

    # Retrieve: into the cache, then it opens in the main window and the first image shows.
    with qtbot.waitSignal(window.dataset_opened, timeout=30_000):
        assert dialog.retrieve() is not None
    qtbot.waitUntil(lambda: window.workspace.image is not None, timeout=30_000)
    folder = window.workspace.catalog.root
    assert folder.name == first.StudyInstanceUID and folder.is_relative_to(tmp_path / "cache" / "dicomweb")
    assert len(window.workspace.catalog) == 4 and not dialog.isVisible()
    shown = window.workspace.entry.path
    original = pacs.files[[h.SOPInstanceUID for h in pacs.headers].index(Path(shown).stem)]
    assert (window.workspace.image.pixels == read_dicom(original).pixels).all()
    assert "Retrieved 4 image(s) (4 downloaded, 0 already in the cache" in dialog.message

    # The same study again comes from the cache; the menu shows the dialog with its results.
    assert controller.show_dialog() is dialog and dialog.studies.rowCount() == 1
    with qtbot.waitSignal(window.dataset_opened, timeout=30_000):
        dialog.retrieve()
    assert "(0 downloaded, 4 already in the cache" in dialog.message


def test_unreachable_refused_and_not_an_image_are_one_line(qtbot, orthanc_with_auth: Any, pacs: LoadedPacs,
                                                           tmp_path: Path) -> None:  # fmt: skip
    worker = BackgroundWorker("pacs-test")
    try:
        from linop_gui.pacs_dialog import PacsDialog

        closed = _closed_port_url()
        dialog = PacsDialog(PacsBrowser(tmp_path / "cache", {}, closed), worker)
        qtbot.addWidget(dialog)
        dialog.search()
        _wait_idle(qtbot, dialog)
        _one_line(dialog.message, closed)
        assert "cannot connect" in dialog.message and "check the URL" in dialog.message
        assert dialog.browser.level is MessageLevel.ERROR and dialog.message_label.text() == dialog.message

        url = orthanc_with_auth.dicomweb_url
        refused = PacsDialog(PacsBrowser(tmp_path / "cache", {TOKEN_ENV: "not-a-valid-token"}, url), worker)
        qtbot.addWidget(refused)
        assert f"bearer token in {TOKEN_ENV}" in refused.credentials_label.text()
        assert "not-a-valid-token" not in refused.credentials_label.text()
        refused.search()
        _wait_idle(qtbot, refused)
        _one_line(refused.message, url)
        assert "401" in refused.message and f"refused the bearer token in {TOKEN_ENV}" in refused.message

        reports = PacsDialog(PacsBrowser(tmp_path / "cache", {}, pacs.url), worker)
        qtbot.addWidget(reports)
        reports.patient_id_edit.setText(pacs.sr_patient)
        reports.search()
        _wait_idle(qtbot, reports)
        assert reports.studies.rowCount() == 1
        reports.retrieve()
        _wait_idle(qtbot, reports)
        _one_line(reports.message, pacs.url)
        assert "holds no image" in reports.message and "Basic Text SR Storage" in reports.message

        # A form that cannot be a query is refused before anything is sent.
        reports.date_edit.setText("31.12.2024")
        assert reports.search() is None and "YYYYMMDD" in reports.message
    finally:
        assert worker.shutdown(10_000)


def test_browser_rules_without_a_screen(tmp_path: Path) -> None:
    browser = PacsBrowser(tmp_path, {"LINOP_DICOMWEB_USER": "reader", "LINOP_DICOMWEB_PASSWORD": "secret"})
    assert "user 'reader'" in browser.credentials and "secret" not in browser.credentials
    assert browser.begin_search(PacsSearch()) is None and "type the DICOMweb root" in browser.message
    browser.set_url("localhost:8042/dicom-web")
    assert browser.begin_search(PacsSearch()) is None and "not an http(s) URL" in browser.message
    browser.set_url("http://pacs.example:8042/dicom-web/")
    assert browser.cache_folder() == tmp_path / "pacs.example_8042_dicom-web"
    assert PacsSearch(date="20240101-").query().date == "20240101-"
    assert PacsSearch(modality=" mg ", patient_name="DOE*").query() == StudyQuery(modality="MG",
                                                                                 patient_name="DOE*")
    for bad in ("2024", "20240101-2024", "-", "2024010120240101"):
        with pytest.raises(Exception, match="YYYYMMDD"):
            PacsSearch(date=bad).query()
    with pytest.raises(Exception, match="not a DICOM UID"):
        PacsSearch(study_uid="../../etc").query()
    request = browser.begin_search(PacsSearch())
    assert request is not None and browser.busy
    assert browser.begin_search(PacsSearch()) is None and "Still searching" in browser.message
    browser.failed("x")
    assert not browser.busy and browser.begin_retrieve() is None and "Select a study" in browser.message


def _approved_session(root: Path, folder: Path) -> tuple[ReviewSession, Catalog]:
    catalog = Catalog.open(root)
    entry = next(e for e in catalog.entries if e.split == "training")
    image = read_dicom(entry.path)
    h, w = image.pixels.shape
    box = (w * 0.45, h * 0.45, w * 0.55, h * 0.55)
    session = ReviewSession.open(root, folder)
    session.apply(entry.image_id, ImageAnnotation(boxes=[LesionBox(box)]))
    (candidate,) = inpaint_lesion(image, InpaintRequest(box=box, seeds=(0,)), BiharmonicEngine(64),
                                  anatomy_check=False, image_name=entry.image_id)
    stored = session.store_candidate(image_id=entry.image_id, box_index=0, candidate=candidate)
    session.record_candidates([stored])
    session.review(stored.candidate_id, "approved", reviewer="reader-1", realism_score=4)
    return session, catalog


def test_export_writes_dicom_and_seg_and_stores_them_on_the_pacs(qtbot, pacs: LoadedPacs, orthanc_with_auth: Any,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    session, catalog = _approved_session(pacs.root, tmp_path / "session")
    worker = BackgroundWorker("export-dicom-test")
    try:
        dialog = ExportDialog(session, catalog, worker)
        qtbot.addWidget(dialog)
        dialog.path_edit.setText(str(tmp_path / "approved.h5"))
        dialog.dicom_box.stow_check.setChecked(True)  # ticks "Also write DICOM" with it
        assert dialog.dicom_box.dicom_check.isChecked()
        dialog.dicom_box.folder_edit.setText(str(tmp_path / "dicom"))
        dialog.dicom_box.stow_edit.setText(pacs.url)
        assert dialog.start() is not None
        qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
        assert dialog.error is None, dialog.error
        outcome = dialog.outcome
        assert outcome is not None and outcome.dicom and outcome.stored, dialog.result_label.text()
        assert (outcome.dicom.n_written, outcome.stored.n_stored) == (1, 2)
        assert [p.parent.name for p in outcome.dicom.files] == ["images", "seg"]
        assert all(p.is_file() for p in outcome.dicom.files)
        text = dialog.result_label.text()
        assert "Wrote 1 sample(s)" in text and "DICOM: 2 file(s) written (" in text and "files/s" in text
        assert f"Stored 2 file(s) on {pacs.url}" in text

        # A QIDO search finds the synthetic study with its image and SEG series.
        server = DicomwebServer(pacs.url)
        (study,) = search_studies(server, StudyQuery(study_uid=outcome.stored.study_uids[0]), with_series=False)
        assert study.patient_id.startswith("LINOP-SYNTH-") and set(study.modalities) == {"MG", "SEG"}
        descriptions = {s.description for s in search_series(server, study.study_uid)}
        assert any(d.startswith("SYNTHETIC LINOP") for d in descriptions) and len(descriptions) == 2

        # A PACS that refuses the store: one line, the set and the DICOM files are kept.
        dialog.path_edit.setText(str(tmp_path / "again.h5"))
        dialog.dicom_box.folder_edit.setText(str(tmp_path / "dicom-again"))
        dialog.dicom_box.stow_edit.setText(orthanc_with_auth.dicomweb_url)
        assert dialog.start() is not None
        qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
        outcome = dialog.outcome
        assert outcome is not None and outcome.stored is None and outcome.dicom is not None
        _one_line(outcome.stow_error, orthanc_with_auth.dicomweb_url)
        assert "401" in outcome.stow_error and "Not stored on the PACS" in dialog.result_label.text()
        assert (tmp_path / "again.h5").is_file() and all(p.is_file() for p in outcome.dicom.files)
    finally:
        assert worker.shutdown(10_000)


def test_dicomweb_argument_is_checked_before_qt_and_no_credential_is_remembered(settings, capsys) -> None:
    from linop_gui.app import main

    assert main(["--dicomweb", "localhost:8042/dicom-web"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an http(s) URL" in err and "http://localhost:8042/dicom-web" in err
    settings.dicomweb_url = "https://reader:secret@pacs.example/dicom-web"
    assert settings.dicomweb_url == "https://pacs.example/dicom-web"
