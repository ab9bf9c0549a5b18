"""The five steps every recipe shares, one module each: images and labels (``data``), JPEG to
``.bin`` (``preprocess``), the AIPP config (``aipp``), the weights (``weights``), ``.pth`` to
ONNX (``export``), top-k scoring (``evaluate``) and the inputs checked before work
(``inputs``).  What differs between recipes is data, read from the recipe
(:mod:`zoorepro.recipebook`); these modules hold no recipe's facts.  Imports only the base
modules (errors, files, config, host, outputs, recipebook)."""
