"""Train a DIRNet (unsupervised) and write it as a model version with its card.

Example (the bundled weights)::

    python scripts/train_dir.py --out echo_napari/models/dirnet_v1.safetensors \\
        --minutes 40 --checkpoint-dir /tmp/dirnet_ckpt

Without ``--out`` the model becomes the next user version (never overwriting). Training
resumes from ``--checkpoint-dir`` when it holds a checkpoint.
"""

from __future__ import annotations

import logging
import sys

from echo_napari.registration.training_cli import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.exit(main())
