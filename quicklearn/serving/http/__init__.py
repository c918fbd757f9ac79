"""`quicklearn serve`: a model folder behind an HTTP API and a web page (the `[serve]` extra: FastAPI + uvicorn).

    settings.py   the server's settings (one dataclass, what the command line sets)
    uploads.py    reading uploads safely: content type against the bytes, size caps
    batching.py   dynamic batching: concurrent requests' items in one forward pass, a bounded queue
    backend.py    what runs a batch: the task's predictor (torch) or onnxruntime
    app.py        the FastAPI app: /health, /info, /predict, the task's own routes, the page, auth, errors
    server.py     serve(): checks at start-up, uvicorn, workers, a graceful stop on SIGTERM
    page/         the web page: plain HTML/CSS/JS served by the package (no CDN, no build step)

The server holds no per-task code: what differs per task comes from `Task.serve` (tasks/base.py's ServeSpec).
"""
