"""Human-facing views of a job: terminal tables and the HTML report."""
