"""The recipe's steps, one module each: images and labels (``data``), JPEG to ``.bin``
(``preprocess``), ``aipp.config`` (``aipp``), the weights (``weights``), ``.pth`` to ONNX
(``export``), top-k scoring (``evaluate``), the inputs checked before work (``inputs``) and the
published figures (``references``).  Imports only the base modules (errors, files, config,
host, outputs)."""
