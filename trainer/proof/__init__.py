"""Proof that the bundled demo models do their job, measured on freshly rendered, held-out phantoms.

``python -m trainer.proof --out docs/demo`` (models default to the bundled ones, see
:func:`linop_core.demo_models.demo_model_path`) writes ``proof.json``, ``proof.md`` and ``examples.png``.

Modules: :mod:`~trainer.proof.settings` (sizes, streams), :mod:`~trainer.proof.phantoms` (rendered sets and their
cache), :mod:`~trainer.proof.instruments` (the crop CNN, two-sample test, FID), :mod:`~trainer.proof.engines`
(the engines compared and the calls into ``linop_core.synthesis``), :mod:`~trainer.proof.inpainting` and
:mod:`~trainer.proof.outpainting` (the two evaluations), :mod:`~trainer.proof.report` (markdown, PNG),
:mod:`~trainer.proof.run` (one run) and :mod:`~trainer.proof.cli` (``python -m trainer.proof``).

Inpainting (mammography). Each test case is one phantom mammogram rendered twice from the same seed, with and
without masses (the renderer draws masses from their own stream, so every pixel more than a pixel or two
outside the mass boxes is the same in both). That gives, for one box: the real mass, the normal tissue under
it, and the box to inpaint.
A small CNN (:class:`~trainer.proof.instruments.CropClassifier`) is trained on mass versus normal crops of
*other* phantoms (the same pairing, so only the presence of a mass separates the classes) and then scores, on
the held-out cases: real masses, normal tissue, MAT-inpainted boxes and biharmonic-inpainted boxes. A crop is
the window ``inpaint_lesion`` gives the model (``synthesis.crop_window``, context 2, the engine's resolution),
resized to 64 x 64. Reported: the share of each called "mass" (target: MAT >= 80 %, biharmonic <= 20 %), and the same
share for a negative control, the same MAT architecture with untrained weights ("mat-untrained"): a measure
that calls the control's blobs masses would not tell a lesion from any bright fill. A stricter measure
follows: a classifier two-sample test (cross-validated accuracy of a fresh CNN telling real masses from each
engine's fills at the same boxes; 50 % = indistinguishable).

Outpainting (chest X-ray). A 4-class CNN (normal, pleural effusion, pneumothorax, pneumonia) is trained on
whole phantom chest X-rays resized to 128 x 128; held-out abnormal phantoms are outpainted around their
finding boxes (``outpaint_around``, margin 16 px) and classified again. Reported: the share that keeps the
source label (target >= 80 %) and the mean absolute difference to the source over the fully regenerated
pixels (window units, [0, 1]): well above zero means the model did not copy the source.

FID of each engine against the real images, with two named feature extractors: the proof classifier's
penultimate layer (``proof-mass-cnn-64`` / ``proof-cxr-cnn-64``: trained here, on phantoms) and the trainer's
weight-free ``randconv-0-64`` (``trainer.fid``). Sample counts are small (tens to ~200), so FIDs are biased
upward and only comparable within one run.

``--cache DIR`` keeps every rendered phantom set (most of the run time; none depends on the models) for later
runs.

Windows: each rendered image gets the window the phantom DICOM writer would store (0.5-99.5 percentile of the
body part, widened by 5 %), i.e. what the trainer saw, and that window is passed to the synthesis requests.
"""
