"""How a training run is configured; it travels inside checkpoints and model cards (the architecture is
aecodec/model_config.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run besides the architecture."""

    data: str = "../shared/data/train"
    # What `aecodec train` found in `data` (on its last start); 0 and "": not recorded, as in older checkpoints.
    data_photos: int = 0
    data_list_sha256: str = ""  # data.file_list_sha256: which photos, by their paths under `data`
    crop: int = 128
    batch: int = 16
    lr: float = 3e-4
    minutes: float = 60.0
    max_steps: int = 0  # 0: no limit besides the time budget
    checkpoint_minutes: float = 5.0
    validate_minutes: float = 10.0
    validation_images: int = 8
    max_side: int = 1280  # photos are downscaled to this on load
    min_scale: float = 0.6  # random down-scaling of crops, 1.0 disables it
    seed: int = 0
    bf16: bool = False  # only pays where the CPU has AVX-512 bf16 or AMX, or on CUDA
    compile_gdn: bool = False  # torch.compile the GDN layers (train/compiled.py): faster steps on a CPU
    threads: int = 0  # 0 lets torch decide
    device: str = "cpu"
    ema_decay: float = 0.0  # >0 keeps an exponential moving average of the weights; export ships it
    lr_decay_fraction: float = 0.0  # the last part of the run (by steps, else by time) trains at lr / 10
    synthetic_share: float = 0.0  # share of crops drawn from synthetic graphics instead of photos
    # >0 weighs each crop's loss by (lambda / the lambda range's geometric middle) ** -level_balance. A crop's
    # loss grows about as sqrt(lambda), so the top rates otherwise outweigh the bottom ~15 to 1; 0.5 evens them.
    level_balance: float = 0.0
    # The checkerboard context's learning rate as a multiple of lr: a context added to a trained model starts
    # from nothing beside weights that are nearly settled (aecodec/train/widen.py, with_context).
    context_lr_scale: float = 1.0
    extra: dict = field(default_factory=dict)  # records kept beside the run: scripts/gpu_train.py's windows

    def to_dict(self) -> dict:
        return asdict(self)
