"""The demo app (`hfcls-app CHECKPOINT`, and the Space `hfcls-push --space` writes): a Gradio page over any
artifact the reader takes.

    model.py   what the page asks of a model, answered through hfcls.pipeline as hfcls-demo answers
    page.py    the Gradio Blocks page (gradio, the app extra)
    serve.py   the port, the launch and the server's life

Importing the package imports nothing heavy: hfcls-app checks its port before torch and gradio load.
"""
