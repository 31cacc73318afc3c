"""oai400d: finds OpenAI API errors in application logs, explains them and alerts a person."""

__version__ = "0.1.0"
