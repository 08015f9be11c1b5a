"""Demo page: preset scenarios shown at once from their stored runs (large fonts), each re-runnable live."""

from dashboard import demo
from dashboard.guard import page_guard

with page_guard("the Demo page"):
    demo.render()
