"""The ``toy`` model's workshop, apart from the runtime engine: its training (:mod:`toykit.train`, which
writes ``morph/toy_model/``, where :mod:`morph.models` loads it), the shapes world it is trained on
(:mod:`toykit.shapes`) and an independent judge of its pictures (:mod:`toykit.judge`). ``morph`` never
imports this package; it imports ``morph``. Run from the repository root: ``python -m toykit train|eval``."""
