"""Model parameters: presets and the frozen :class:`ModelSpec`.

A spec says everything that determines a trained model besides its data: architecture
(network kind, hidden size, layers, dropout), windows and scaling, optimiser, stopping rule and
seed, and for the Sharpe loss the limits its portfolio is sized under.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from models.errors import SpecError, did_you_mean
from models.features import check_features
from models.names import MODEL_NAME

Mode = Literal["per_ticker", "pooled"]
Scaling = Literal["window", "ticker"]
Optimizer = Literal["adam", "adamw"]
Arch = Literal["lstm", "lstm_attention", "transformer"]
Loss = Literal["mse", "sharpe"]

#: The network architectures (:func:`models.net.make_net` builds them).
ARCHS: tuple[Arch, ...] = ("lstm", "lstm_attention", "transformer")
#: The training losses (:mod:`models.train` and :mod:`models.portfolio`).
LOSSES: tuple[Loss, ...] = ("mse", "sharpe")
#: Attention heads of the transformer; its ``d_model`` (``hidden``) must be a multiple.
HEADS = 4
#: The Sharpe loss's limits when none are given: seed 001's (cap 1/3 per ticker, fully invested,
#: shorts on), the ones every Sharpe model was trained under before a run's own limits reached
#: the loss. In the order ``(max_weight, gross, allow_short)``.
PAPER_LIMITS: tuple[float, float, bool] = (1 / 3, 1.0, True)
#: The spec fields holding the Sharpe loss's limits (not ``[model]`` fields: a config's
#: ``[strategy]`` or ``[profile]`` gives them).
LIMIT_FIELDS = ("max_weight", "gross", "allow_short")

#: Architecture and optimiser of each preset. ``paper`` is seed 001 (2 x 256 LSTM, Adam,
#: lr 1e-3, MSE); ``small`` is seed 002 (2 x 32 LSTM, AdamW). Batch size is not given by the
#: seeds; 64 is ours.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "hidden": 256,
        "layers": 2,
        "dropout": 0.0,
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch": 64,
    },
    "small": {
        "hidden": 32,
        "layers": 2,
        "dropout": 0.0,
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.01,
        "batch": 64,
    },
}

#: A preset's changes for one architecture. The paper transformer's ``d_model`` is 128, not
#: 256: at 256 an epoch took 3.3 times as long, about 5 minutes for 12 models on 2 cores
#: against a budget of 3 (docs/benchmarks.md).
ARCH_PRESETS: dict[tuple[str, Arch], dict[str, Any]] = {
    ("paper", "transformer"): {"hidden": 128},
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a model besides its data.

    Attributes
    ----------
    name
        Registered model name (letters, digits, ``_ . -``).
    mode
        ``per_ticker``: one network per ticker (seed 001); ``pooled``: one network trained on
        the windows of every ticker.
    scaling
        ``window``: each window's prices are divided by its last price (``p / p_last - 1``) and
        the target is the next-week return; both are then standardised with the mean and
        standard deviation of the training split. ``ticker``: prices are standardised with the
        ticker's training-split mean and standard deviation (level scaling; it fails out of
        sample once prices leave the training range, see ../shared/docs/PITFALLS.md).
    window
        Weekly prices per input window (the target is the week after the window).
    arch
        The network (:mod:`models.net`): ``lstm`` (stacked LSTM, a linear head on the last
        hidden state), ``lstm_attention`` (the same LSTM with additive attention over the
        window) or ``transformer`` (an encoder with :data:`HEADS` heads).
    features
        The inputs, in the order of :data:`models.features.FEATURES` (``close`` always
        among them): one input channel each, see :mod:`models.features`.
    loss
        ``mse``: each network minimises the mean squared error of its next-week forecast.
        ``sharpe``: one pooled network's outputs are sized into portfolio weights each week
        by a differentiable copy of the LSTM-signal sizing rule under ``max_weight``,
        ``gross`` and ``allow_short``, and it maximises the Sharpe ratio of that portfolio
        over the training weeks (:mod:`models.portfolio`); it needs ``mode = "pooled"`` and
        two or more tickers.
    max_weight, gross, allow_short
        The limits the Sharpe loss sizes its portfolio under, as
        :class:`strategies.sizing.Limits` names them: the cap on each ``|weight|`` (in
        (0, 1]), the gross exposure ``sum |w|`` (in (0, 2]) and whether shorts are allowed.
        A run's own limits (its profile's, else ``[strategy]``'s;
        :func:`simulator.training.model_spec`), so that the network trains on the weights the
        strategy will trade. Default :data:`PAPER_LIMITS`. Only the Sharpe loss has them: an MSE
        model forecasts and the strategy applies its limits afterwards, so an MSE spec must
        leave them at the default, and they never enter its stored form or digest.
    hidden, layers, dropout
        Network size: the LSTM's hidden units and layers, or the transformer's ``d_model``
        (a multiple of :data:`HEADS`) and encoder layers; dropout between layers.
    optimizer, lr, weight_decay, batch
        Training (``batch``: windows per step for ``mse``, weeks per step for ``sharpe``).
    max_epochs, patience
        Early stopping on validation loss: stop after ``patience`` epochs without improvement
        and restore the best weights.
    val_fraction
        The last fraction of the training windows (chronologically) used for validation.
    seed
        Seeds weight initialisation and minibatch order.
    threads
        ``torch.set_num_threads``; 0 means foliosim's choice
        (:func:`models.forecaster.auto_threads`: one thread below 128 hidden units, else every
        usable core). Bit-identical results need the same thread count.
    preset
        The preset the architecture came from (informational).
    """

    name: str
    mode: Mode = "per_ticker"
    scaling: Scaling = "window"
    window: int = 24
    arch: Arch = "lstm"
    features: tuple[str, ...] = ("close",)
    loss: Loss = "mse"
    max_weight: float = PAPER_LIMITS[0]
    gross: float = PAPER_LIMITS[1]
    allow_short: bool = PAPER_LIMITS[2]
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch: int = 64
    max_epochs: int = 200
    patience: int = 10
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 0
    preset: str = "paper"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not MODEL_NAME.fullmatch(self.name):
            raise SpecError(
                f"model name {self.name!r}: use letters, digits, '_', '.' or '-' "
                "(e.g. 'paper12-lstm')"
            )
        if self.arch not in ARCHS:
            raise SpecError(
                f"unknown model.arch {self.arch!r}{did_you_mean(str(self.arch), ARCHS)}: use "
                f"one of {', '.join(ARCHS)}"
            )
        # Canonical order (and a tuple, as a list may come from a config or a stored spec).
        object.__setattr__(self, "features", check_features(self.features))
        if self.loss not in LOSSES:
            raise SpecError(
                f"unknown model.loss {self.loss!r}{did_you_mean(str(self.loss), LOSSES)}: use "
                f"one of {', '.join(LOSSES)}"
            )
        if self.loss == "sharpe" and self.mode != "pooled":
            raise SpecError(
                "model.loss = 'sharpe' trains one pooled network for the universe (it sizes "
                "every ticker of a week together); set model.mode = 'pooled' or leave it out"
            )
        if self.loss == "sharpe" and self.scaling != "window":
            raise SpecError(
                "model.loss = 'sharpe' needs model.scaling = 'window' (one scaler for every "
                "ticker, so that scores of different tickers compare)"
            )
        self._check_limits()
        checks: list[tuple[str, bool, str]] = [
            ("mode", self.mode in ("per_ticker", "pooled"), "'per_ticker' or 'pooled'"),
            ("scaling", self.scaling in ("window", "ticker"), "'window' or 'ticker'"),
            ("optimizer", self.optimizer in ("adam", "adamw"), "'adam' or 'adamw'"),
            ("window", 2 <= self.window <= 520, "between 2 and 520 weeks"),
            ("hidden", 1 <= self.hidden <= 4096, "between 1 and 4096"),
            ("layers", 1 <= self.layers <= 8, "between 1 and 8"),
            ("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)"),
            ("lr", 0.0 < self.lr <= 1.0, "in (0, 1]"),
            ("weight_decay", 0.0 <= self.weight_decay <= 1.0, "in [0, 1]"),
            ("batch", 1 <= self.batch <= 65536, "between 1 and 65536"),
            ("max_epochs", 1 <= self.max_epochs <= 100_000, "at least 1"),
            ("patience", 1 <= self.patience <= 100_000, "at least 1"),
            ("val_fraction", 0.0 < self.val_fraction < 1.0, "in (0, 1)"),
            ("seed", 0 <= self.seed < 2**63, "a non-negative integer"),
            ("threads", 0 <= self.threads <= 1024, "0 (all cores) or a positive count"),
            (
                "hidden",
                self.arch != "transformer" or self.hidden % HEADS == 0,
                f"a multiple of {HEADS} with arch 'transformer' (d_model is split over "
                f"{HEADS} attention heads)",
            ),
        ]
        for field, ok, expected in checks:
            if not ok:
                value = getattr(self, field)
                raise SpecError(f"model.{field} must be {expected} (got {value!r})")

    def _check_limits(self) -> None:
        numbers = (self.max_weight, self.gross)
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
            raise SpecError(
                f"max_weight and gross must be numbers (got {self.max_weight!r}, {self.gross!r})"
            )
        if not isinstance(self.allow_short, bool):
            raise SpecError(f"allow_short must be true or false (got {self.allow_short!r})")
        # Floats, so that a limit given as 1 stores (and digests) as the 1.0 it means.
        object.__setattr__(self, "max_weight", float(self.max_weight))
        object.__setattr__(self, "gross", float(self.gross))
        if not 0.0 < self.max_weight <= 1.0:
            raise SpecError(f"max_weight must be in (0, 1] (got {self.max_weight!r})")
        if not 0.0 < self.gross <= 2.0:
            raise SpecError(f"gross must be in (0, 2] (got {self.gross!r})")
        if self.loss != "sharpe" and self.limits != PAPER_LIMITS:
            raise SpecError(
                f"the limits (max_weight, gross, allow_short) = {self.limits} are for "
                "model.loss = 'sharpe' only: an MSE model forecasts returns and the strategy "
                "applies its limits afterwards; leave them out"
            )

    @property
    def limits(self) -> tuple[float, float, bool]:
        """``(max_weight, gross, allow_short)``: the limits the Sharpe loss sizes under."""
        return (self.max_weight, self.gross, self.allow_short)

    @classmethod
    def from_preset(cls, name: str, preset: str = "paper", **fields: Any) -> ModelSpec:
        """A spec from a preset (with its :data:`ARCH_PRESETS` changes for ``fields["arch"]``),
        explicit ``fields`` (not None) taking precedence.

        >>> ModelSpec.from_preset("m", "small", hidden=16).hidden
        16
        >>> ModelSpec.from_preset("m", "small").optimizer
        'adamw'
        >>> ModelSpec.from_preset("m", "paper", arch="transformer").hidden
        128
        """
        if preset not in PRESETS:
            raise SpecError(f"unknown model preset {preset!r}{did_you_mean(preset, PRESETS)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise SpecError(f"unknown model field {unknown[0]!r}{did_you_mean(unknown[0], known)}")
        given = {k: v for k, v in fields.items() if v is not None}
        if given.get("loss") == "sharpe":
            given.setdefault("mode", "pooled")  # the Sharpe loss sizes every ticker together
        arch_changes = ARCH_PRESETS.get((preset, given.get("arch", "lstm")), {})
        values = {**PRESETS[preset], **arch_changes, **given}
        return cls(name=name, preset=preset, **values)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (``config.json``, the registry's ``spec_sha256``).

        ``arch``, ``features``, ``loss`` and the Sharpe loss's limits are left out at their
        defaults (``lstm``, ``["close"]``, ``mse``, :data:`PAPER_LIMITS`): specs stored before
        they existed have none and load with the defaults (:meth:`from_dict`), so such a spec
        keeps the form, and the digest, it always had and its registered versions are still
        reused. Any other value is stored, so its digest never equals the default's. (An MSE
        spec's limits are always the default; a Sharpe spec stored before the limits existed
        was trained under :data:`PAPER_LIMITS`.)

        >>> "arch" in ModelSpec("m").to_dict(), ModelSpec("m", arch="transformer").to_dict()["arch"]
        (False, 'transformer')
        >>> ModelSpec("m", features=("close", "index")).to_dict()["features"]
        ['close', 'index']
        >>> s = ModelSpec("m", mode="pooled", loss="sharpe", allow_short=False).to_dict()
        >>> s["allow_short"], "max_weight" in s
        (False, False)
        """
        stored = dataclasses.asdict(self)
        stored["features"] = list(self.features)
        defaults: list[tuple[str, Any]] = [("arch", "lstm"), ("features", ["close"])]
        defaults += [("loss", "mse"), *zip(LIMIT_FIELDS, PAPER_LIMITS, strict=True)]
        for key, default in defaults:
            if stored[key] == default:
                del stored[key]
        return stored

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelSpec:
        """A spec from its stored form (:meth:`to_dict`); no ``arch`` means ``lstm``, no
        limits mean :data:`PAPER_LIMITS`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(f"unknown model field {unknown[0]!r} in a stored spec")
        return cls(**raw)


def trained_before(train_end: Any, week: Any) -> bool:
    """Whether a model trained on data up to ``train_end`` may decide at the close of
    ``week``: the time contract's "trained on data that ended before week t". A model whose
    training ended at t itself saw the target of the window ending at t-1 but also t's close
    as a training input, so it may first decide at the week after."""
    return bool(train_end < week)
