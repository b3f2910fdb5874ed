"""TIM-Net for speech emotion recognition on TensorFlow/Keras 3."""

__version__ = "1.0.0"
