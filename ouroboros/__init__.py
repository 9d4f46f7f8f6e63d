"""ouroboros: curation of web text for language-model training, with provenance.

The code lives in the top-level folders ``pipeline/``, ``transforms/`` and ``schemas/``; they are
installed as ``ouroboros.pipeline``, ``ouroboros.transforms`` and ``ouroboros.schemas``.
"""

__version__ = "0.1.0"
