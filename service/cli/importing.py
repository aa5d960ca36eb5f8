"""`aeserve import`: serve an autoencoder trained elsewhere (ONNX, or TorchScript converted here).

Like `aeserve train`, the work happens in this process: torch and onnx are imported inside the
command only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.config import Loss
from core.errors import PayloadTooLarge
from core.importing import ImportOptions, ImportScaling
from core.repository import check_name
from core.settings import Settings
from service.cli.options import RepositoryOption, setting_default
from service.cli.output import console, escape
from service.cli.training import _repository, _user_errors

_FIELDS = ImportOptions.model_fields
_DEFAULTS = ImportOptions()


def _about(field: str) -> str:
    return _FIELDS[field].description or ""


def import_model(
    model: Annotated[
        Path,
        typer.Argument(
            help="An ONNX file mapping [n, d] rows to a [n, d] reconstruction, or a TorchScript "
            "module (torch.jit.save) doing the same.",
            exists=True,
            dir_okay=False,
        ),
    ],
    name: Annotated[str, typer.Option(help="Model name; an existing model gets a new version.")],
    calibration: Annotated[
        str,
        typer.Option(
            help="Normal rows the threshold and p-values come from: a .csv, .npy, .npz or "
            ".parquet file, or builtin:digits."
        ),
    ],
    scaling: Annotated[ImportScaling, typer.Option(help=_about("scaling"))] = _DEFAULTS.scaling,
    loss: Annotated[Loss, typer.Option(help=_about("loss"))] = _DEFAULTS.loss,
    codes: Annotated[
        str | None,
        typer.Option(
            help=_about("codes"), metavar="OUTPUT_NAME", show_default="none: no codes served"
        ),
    ] = None,
    reconstructions: Annotated[
        str | None,
        typer.Option(
            help=_about("reconstructions"),
            metavar="OUTPUT_NAME",
            show_default="the one output besides the codes",
        ),
    ] = None,
    threshold_quantile: Annotated[
        float, typer.Option(help=_about("threshold_quantile"))
    ] = _DEFAULTS.threshold_quantile,
    promote: Annotated[
        bool,
        typer.Option(
            help="Make the new version the active one. A model's first version always is."
        ),
    ] = False,
    repository: RepositoryOption = None,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-bytes",
            help="Largest model file taken.",
            show_default=setting_default("max_import_bytes"),
        ),
    ] = None,
) -> None:
    """Import the autoencoder in MODEL as the next version of NAME: wrapped with scaling and
    scores, calibrated on normal rows, checked against itself, published."""
    with _user_errors():
        check_name(name)
        options = ImportOptions(
            scaling=scaling,
            loss=loss,
            codes=codes,
            reconstructions=reconstructions,
            threshold_quantile=threshold_quantile,
        )
        limit = max_bytes if max_bytes is not None else Settings().max_import_bytes
        size = model.stat().st_size
        if size > limit:
            raise PayloadTooLarge(
                f"model: {str(model)!r} has {size} bytes, more than {limit} "
                "(--max-bytes, AESERVE_MAX_IMPORT_BYTES)"
            )
        from core.data import load_array
        from models.importing import import_and_publish

        rows = load_array(calibration)
        store = _repository(repository)
        published = import_and_publish(model, rows, name, options, store, promote=promote)

    manifest = published.manifest
    active = store.active_version(name) == published.version
    graphs = (
        f"codes of width {manifest.latent_dim}"
        + ("" if "decoder" in manifest.graphs else "; no decoder: /decode answers 409")
        if manifest.latent_dim is not None
        else "no codes: /encode and /decode answer 409"
    )
    console().print(
        f"imported [bold]{escape(name)}[/bold] version {published.version}"
        f"{' (active)' if active else ''}: {manifest.input_dim} features, {escape(graphs)}, "
        f"threshold {manifest.threshold:.4g} (quantile {manifest.threshold_quantile} of "
        f"{manifest.calibration.n} calibration scores), parity within "
        f"{manifest.parity.max_abs_diff:.2g}"
    )
    console().print(f"written to {escape(store.version_location(name, published.version))}")
    if not active:
        console().print(
            f"not served yet: `aeserve promote {escape(name)} {published.version}"
            f" --repository {escape(store.location)}` makes it the active version"
        )
