"""wakeword: few-shot wake-word transfer learning on Google's speech_embedding encoder."""

__version__ = "0.1.0"

# Bumped whenever the numbers a model sees change (front end, encoder weights):
# model files and feature caches written by another feature version are refused.
FEATURE_VERSION = 1
