"""Gradio UI for reroute.

The app only converts between Gradio components and numpy arrays, calls the
:mod:`reroute` pipelines and reports their results; all the work happens in
:mod:`reroute`. Start it with ``python launch.py``; build it in code with
:func:`app.ui.build_app`.
"""
