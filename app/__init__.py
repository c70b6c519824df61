"""Gradio UI for reroute.

The app only converts between Gradio components and numpy arrays, calls the
:mod:`reroute` pipelines and reports their results; all the work happens in
:mod:`reroute` (it imports only ``reroute``'s top-level API,
:mod:`reroute.pipelines`, :mod:`reroute.io` and :mod:`reroute.errors`):

* :mod:`app.ui`: the layout, one builder per tab, and the API's endpoints
  (its module docstring lists every endpoint's parameters and outputs);
* :mod:`app.callbacks`: the callbacks behind the endpoints (input checks,
  status sentences, drawings of the fitted bodies);
* :mod:`app.services`: limits and deadlines, the checkpoint registry, the
  shared pipelines and analysis cache, the start-up warm-up.

Start it with ``python launch.py``; build it in code with
:func:`app.ui.build_app`.
"""
