"""The printable report: a heading never ends a page with its content on the next."""

from __future__ import annotations

from echo_napari.report_pdf import _application, _first_line_top, keep_headings_with_what_follows


def _document(filler_lines: int):
    from qtpy.QtCore import QSizeF
    from qtpy.QtGui import QTextDocument

    _application()
    document = QTextDocument()
    filler = "<p>text</p>" * filler_lines
    tall = "<p><img width='200' height='300'></p>"
    document.setHtml(f"<h2>First</h2>{filler}<h2>Plots</h2>{tall}<h2>End</h2><p>x</p>")
    document.setPageSize(QSizeF(500, 700))
    return document


def _pages(document) -> dict[str, tuple[int, int]]:
    """{heading text: (its page, the page of the block after it)}."""
    layout, height = document.documentLayout(), document.pageSize().height()
    document.pageCount()
    out = {}
    block = document.begin()
    while block.isValid():
        if block.blockFormat().headingLevel():
            out[block.text()] = (
                int(_first_line_top(block, layout) // height),
                int(_first_line_top(block.next(), layout) // height),
            )
        block = block.next()
    return out


def test_a_heading_at_the_foot_of_a_page_moves_to_its_plots():
    orphaned = None
    for lines in range(10, 40):  # find a filler length that leaves "Plots" orphaned
        document = _document(lines)
        heading, content = _pages(document)["Plots"]
        if content > heading:
            orphaned = document
            break
    assert orphaned is not None
    assert keep_headings_with_what_follows(orphaned) == 1
    assert all(heading == content for heading, content in _pages(orphaned).values())
    assert keep_headings_with_what_follows(orphaned) == 0


def test_headings_with_their_content_stay_where_they_are():
    document = _document(2)
    before = _pages(document)
    assert keep_headings_with_what_follows(document) == 0
    assert _pages(document) == before
