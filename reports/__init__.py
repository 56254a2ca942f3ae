"""Evidence for the MHLW checklist and the monthly report (issue 7, without the backups themselves).

gather (read every area's data) -> checklist / monthly (pure: snapshot -> items / report model) ->
render (HTML via Jinja2, PDF via WeasyPrint). Nothing here changes the box except the clinic's own
checklist answers (reports.answers) and the generated report files under state_dir/reports.
"""
