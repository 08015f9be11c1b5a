"""Demo page: preset scenarios shown at once from their stored runs (large fonts), each re-runnable live."""

from dashboard import demo, widgets

with widgets.page_guard("the Demo page"):
    demo.render()
