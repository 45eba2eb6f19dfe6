"""echo-napari: review and refine echocardiography segmentations over the cardiac cycle."""

from echo_napari.errors import EchoIOError, EchoNapariError
from echo_napari.sequence import EchoSequence, LabelClass

__version__ = "0.1.0"
__all__ = ["EchoIOError", "EchoNapariError", "EchoSequence", "LabelClass", "__version__"]
