"""``timnet serve``: a web page and an HTTP API for one trained model.

:mod:`~timnet.serving.backend` is the only module that touches the model;
:mod:`~timnet.serving.uploads` turns uploaded bytes into a checked waveform;
:mod:`~timnet.serving.app` is the FastAPI application; :mod:`~timnet.serving.server`
binds the address and runs it under uvicorn. FastAPI, uvicorn, python-multipart and
swagger-ui-bundle are the optional ``serve`` extra: nothing imports them until a
server is made.
"""
