"""Pure tables, frames and figures of stored runs (no streamlit), shared by the CLI, the HTML report and the pages."""
