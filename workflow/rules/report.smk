"""What `snakemake --report report.html` shows: the workflow description below, then every rule
output wrapped in report(...) with its caption from workflow/report/<output name>.rst."""


report: "../report/workflow.rst"
