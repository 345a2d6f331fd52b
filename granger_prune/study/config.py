"""Study configuration: a TOML file, validated into dataclasses.

Unknown keys are errors, not silently ignored: a misspelt ``n_psot`` must not
run a study with the default post-training.
"""

import dataclasses
import inspect
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .._checks import check_choice
from ..zoo.datasets import DATASETS
from ..zoo.models import MODELS
from ..criteria import Causal, Magnitude, PruningMethod, Random, criterion_from_dict
from ..record.disk import STEP_DTYPES
from ..selection.keep import check_sparsity
from ..training.algorithm import Schedule, SGDConfig
from ..training.optim import TrainingConfig


def _check_keys(section, mapping, allowed):
    if not isinstance(mapping, dict):
        raise ValueError(f"{section} must be a table, got {mapping!r}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        where = f" in [{section}]" if section else ""
        raise ValueError(f"unknown config key(s) {unknown}{where}; known: {sorted(allowed)}")


def _field_names(cls):
    return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class StudyConfig:
    """Everything a phase-shift study needs.

    Attributes
    ----------
    name : str
    dataset : str
        A name from :data:`granger_prune.zoo.DATASETS`.
    model : {"mlp", "cnn"}
    model_options : dict
        Keyword arguments of the model class (e.g. ``hidden`` for the MLP).
    methods : tuple of PruningMethod
        The criteria compared; a ``[[methods]]`` table names one by its registry
        name (:data:`granger_prune.criteria.CRITERIA`) with its options, e.g.
        ``name = "causal"``, ``scope = "layer"``, ``rule = {name = "rank", alpha_ratio = 0.01}``.
    sparsities : tuple of float in [0, 1)
    seeds : tuple of int
    schedule : Schedule
    sgd : SGDConfig
        Plain SGD at one constant rate in every phase, and the batch size (``[sgd]``).
    training : TrainingConfig, optional
        Instead of ``sgd``: the batch size and each phase's optimizer and
        learning-rate schedule (``[training]``, with ``[training.optimizer]`` for
        every phase and ``[training.pre]``, ``[training.prune]``, ``[training.post]``
        for one).
    dense_reference : bool
        Also train the unpruned model under the same schedule, as a reference.
    validation_fraction : float in [0, 1)
        Fraction of the training data held out as a validation split (stratified,
        seeded by ``validation_seed``, the same for every training seed; 0.2 by
        default); the results report its accuracy and loss beside the test
        split's, and ``schedule.keep_best`` chooses the post-training epoch on
        it.  0 holds out nothing (the bundled studies' figures before the
        split were measured so).
    validation_seed : int
    compare_to : str, optional
        The label every other criterion is compared against, paired over seeds
        at each sparsity (``comparisons.csv``, ``differences.png``); by default
        the first magnitude criterion's label, and no comparison without one.
    device : str
        Where the models train and the data sit: ``"auto"`` (default: CUDA when
        present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
        (:func:`granger_prune.training.resolve_device`).  CPU runs are
        bit-identical for a seed; GPU kernels are not deterministic by default.
    trajectory_store : {"memory", "disk", "device"}
        Where each pruning round's trajectory is recorded: in host memory
        (default); in a :class:`~granger_prune.record.DiskTrajectory` under
        ``store_dir`` (default: ``trajectories/`` in the run folder), removed
        after the round's selection; or on the model's device, a
        :class:`~granger_prune.record.DeviceTrajectory` (on a GPU the steps never
        reach the host and the design is built there).  With ``"disk"`` a round
        that would exceed ``store_budget_gb`` or the free disk, with ``"device"``
        one that would exceed ``store_budget_gb`` or its share of the device's
        free memory, is refused before any training.
    store_dir : str, optional
    store_budget_gb : float, optional
    store_dtype : {"float32", "bfloat16"}
        How a disk store keeps the steps: float32 (default) or bfloat16, half the
        bytes at a relative rounding of at most 2**-8 per step.
    """

    name: str = "study"
    dataset: str = "digits"
    model: str = "mlp"
    model_options: dict = field(default_factory=dict)
    methods: tuple = (Causal(), Magnitude(), Random())
    sparsities: tuple = (0.5, 0.75, 0.9, 0.95, 0.98)
    seeds: tuple = (0, 1)
    schedule: Schedule = Schedule()
    sgd: SGDConfig = SGDConfig()
    training: Optional[TrainingConfig] = None
    dense_reference: bool = True
    validation_fraction: float = 0.2
    validation_seed: int = 0
    compare_to: Optional[str] = None
    device: str = "auto"
    trajectory_store: str = "memory"
    store_dir: Optional[str] = None
    store_budget_gb: Optional[float] = None
    store_dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.dense_reference, bool):
            raise ValueError(f"dense_reference must be true or false, got {self.dense_reference!r}")
        if not isinstance(self.model_options, dict):
            raise ValueError(f"model_options must be a table of options, got {self.model_options!r}")
        check_choice("dataset", self.dataset, tuple(DATASETS))
        check_choice("model", self.model, tuple(MODELS))
        accepted = set(inspect.signature(MODELS[self.model]).parameters) - {"in_features", "in_channels",
                                                                           "n_classes", "image_size"}
        unknown = sorted(set(self.model_options) - accepted)
        if unknown:
            raise ValueError(f"unknown model_options {unknown} for model {self.model!r}; "
                             f"known: {sorted(accepted)}")
        if not self.methods:
            raise ValueError("methods is empty: a study needs at least one method")
        if self.training is not None and not isinstance(self.training, TrainingConfig):
            raise ValueError(f"training must be a TrainingConfig, got {self.training!r}")
        not_methods = [m for m in self.methods if not isinstance(m, PruningMethod)]
        if not_methods:
            raise ValueError(f"methods must be criteria (PruningMethod), got {not_methods!r}")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"methods must have distinct labels, got {labels}")
        if not self.sparsities:
            raise ValueError("sparsities is empty")
        for key in ("sparsities", "seeds"):
            values = list(getattr(self, key))
            if len(set(values)) != len(values):
                raise ValueError(f"{key} must not repeat a value, got {values}")
        for s in self.sparsities:
            check_sparsity(s, name="sparsities")
        if not isinstance(self.validation_fraction, (int, float)) or not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in [0, 1), got {self.validation_fraction!r}")
        if not isinstance(self.validation_seed, int) or isinstance(self.validation_seed, bool):
            raise ValueError(f"validation_seed must be an integer, got {self.validation_seed!r}")
        if self.compare_to is not None and self.compare_to not in labels:
            raise ValueError(f"compare_to must be one of the labels {labels}, got {self.compare_to!r}")
        check_choice("trajectory_store", self.trajectory_store, ("memory", "disk", "device"))
        check_choice("store_dtype", self.store_dtype, tuple(STEP_DTYPES))
        if self.trajectory_store == "device" and self.store_dtype != "float32":
            raise ValueError(f"store_dtype={self.store_dtype!r} is how a disk store keeps the steps; "
                             "trajectory_store='device' keeps them in float32")
        if self.store_dir is not None and not isinstance(self.store_dir, str):
            raise ValueError(f"store_dir must be a path string, got {self.store_dir!r}")
        if self.store_budget_gb is not None and (
                isinstance(self.store_budget_gb, bool) or not isinstance(self.store_budget_gb, (int, float))
                or not self.store_budget_gb > 0):
            raise ValueError(f"store_budget_gb must be a positive number, got {self.store_budget_gb!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {self.device!r}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers, got {list(self.seeds)!r}")

    @classmethod
    def from_dict(cls, raw):
        """Validate a plain dict (as read from TOML) into a config."""
        _check_keys("", raw, _field_names(cls))
        kwargs = dict(raw)
        for key in ("sparsities", "seeds", "methods"):
            if key in raw and not isinstance(raw[key], (list, tuple)):
                raise ValueError(f"{key} must be a list, got {raw[key]!r}")
        if "schedule" in raw:
            _check_keys("schedule", raw["schedule"], _field_names(Schedule))
            kwargs["schedule"] = Schedule(**raw["schedule"])
        if "sgd" in raw:
            _check_keys("sgd", raw["sgd"], _field_names(SGDConfig))
            kwargs["sgd"] = SGDConfig(**raw["sgd"])
        if raw.get("training") is not None:
            if kwargs.get("sgd", SGDConfig()) != SGDConfig():
                raise ValueError("give either [sgd] (plain SGD) or [training] (an optimizer per phase), "
                                 "not both")
            kwargs["training"] = TrainingConfig.from_dict(raw["training"])
        if "methods" in raw:
            methods = []
            for spec in raw["methods"]:
                try:
                    methods.append(criterion_from_dict(spec))
                except (TypeError, ValueError) as error:
                    raise ValueError(f"in [[methods]] {spec!r}: {error}") from None
            kwargs["methods"] = tuple(methods)
        for key in ("sparsities", "seeds"):
            if key in raw:
                kwargs[key] = tuple(raw[key])
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path):
        """Read and validate a TOML file."""
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))

    @property
    def baseline(self):
        """The label compared against: ``compare_to``, else the first magnitude
        criterion's label (None without one)."""
        if self.compare_to is not None:
            return self.compare_to
        return next((m.label for m in self.methods if isinstance(m, Magnitude)), None)

    @property
    def optimization(self):
        """What trains the model: ``training`` when given, else ``sgd``."""
        return self.sgd if self.training is None else self.training

    def to_dict(self):
        """The resolved configuration as plain JSON-serialisable data."""
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        raw.update(methods=[m.to_dict() for m in self.methods], schedule=dataclasses.asdict(self.schedule))
        if self.training is None:
            raw.update(sgd=dataclasses.asdict(self.sgd), training=None)
        else:  # what trains is [training]; a factory callable is written as its repr
            raw.pop("sgd")
            raw["training"] = self.training.to_dict()
        return json.loads(json.dumps(raw, default=repr))

    def with_overrides(self, overrides):
        """A copy with dotted ``key=value`` overrides applied.

        Parameters
        ----------
        overrides : iterable of str
            E.g. ``"seeds=[0]"`` or ``"schedule.n_post=5"``; values are parsed as
            JSON when they parse, else kept as strings.
        """
        raw = self.to_dict()
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise ValueError(f"override must look like key=value, got {item!r}")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            *parents, leaf = key.strip().split(".")
            node = raw
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ValueError(f"unknown config key {key!r}")
                node = node[part]
            if leaf not in node and not (parents and parents[-1].endswith("options")):
                raise ValueError(f"unknown config key {key!r}")
            node[leaf] = value
        return type(self).from_dict(raw)


#: Where the bundled studies' configurations ship, inside the package.
BUNDLED = Path(__file__).parent / "configs"


def bundled_studies():
    """The names of the studies that ship with the package, e.g. ``"digits_phase_shift"``."""
    return sorted(p.stem for p in BUNDLED.glob("*.toml"))


def resolve_study(study, search_root=None):
    """Find a study's configuration file.

    Parameters
    ----------
    study : str or path
        A TOML file, a folder holding a ``config.toml``, the name of a folder
        under ``<search_root>/studies/`` holding one (a project of your own), or
        the name of a bundled study (:func:`bundled_studies`), in that order.
    search_root : path, optional
        Where ``studies/`` lives; the current directory by default.

    Returns
    -------
    pathlib.Path
    """
    root = Path(search_root or Path.cwd())
    candidates = [Path(study), Path(study) / "config.toml", root / "studies" / str(study) / "config.toml",
                  BUNDLED / f"{study}.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"study {str(study)!r} not found: give a TOML file, a folder holding a config.toml, a folder "
        f"name under {root / 'studies'}, or the name of a bundled study ({', '.join(bundled_studies())}; "
        "`granger-prune list` names them)"
    )
