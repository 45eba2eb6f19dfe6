"""Printable PDF copy of the HTML report, drawn by Qt (no browser, no extra package).

Qt's rich-text engine (``QTextDocument``) lays the report's headings, notes and tables out
on A4 pages and prints them with ``QPrinter``; it cannot draw inline SVG, so each plot is
first rendered by QtSvg into an image at twice its size (sharp in print) and put in its
place, scaled to :data:`FIGURE_SCALE` so that two plots share a row. Without a display
Qt's ``offscreen`` platform is used, so the command line works on a headless server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from echo_napari.cli_tasks import atomic_path
from echo_napari.errors import EchoIOError

#: Printed width of a plot relative to its SVG size (points per SVG pixel).
FIGURE_SCALE = 0.68
#: Base font size of the printed text, points.
FONT_POINTS = 8.5
#: Page margins, mm.
MARGIN_MM = 12.0

_SVG = re.compile(r"<svg\b.*?</svg>", flags=re.S)


_APP = None  # the application this module made (kept: Qt needs it alive while drawing)


def _application():
    """The running Qt application, or a new one (offscreen when there is no display)."""
    global _APP
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = _APP = QApplication([])
    return app


def _document(html: str):
    """A ``QTextDocument`` of ``html`` with every inline SVG replaced by its image."""
    from qtpy.QtCore import QByteArray, Qt, QUrl
    from qtpy.QtGui import QFont, QImage, QPainter, QTextDocument
    from qtpy.QtSvg import QSvgRenderer

    document = QTextDocument()
    font = QFont("sans-serif")
    font.setPointSizeF(FONT_POINTS)
    document.setDefaultFont(font)

    def image_of(match: re.Match) -> str:
        renderer = QSvgRenderer(QByteArray(match.group(0).encode("utf-8")))
        size = renderer.defaultSize()
        if not renderer.isValid() or size.isEmpty():
            return ""
        image = QImage(2 * size.width(), 2 * size.height(), QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.white)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        name = f"figure{image_of.count}.png"
        image_of.count += 1
        document.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
        width, height = FIGURE_SCALE * size.width(), FIGURE_SCALE * size.height()
        return f'<img src="{name}" width="{width:.0f}" height="{height:.0f}"> '

    image_of.count = 0
    # Qt's CSS subset has no flex layout: inline images flow two to a row by themselves.
    document.setHtml(_SVG.sub(image_of, html))
    return document


def _first_line_top(block, layout) -> float:
    """Where a laid-out block's first line starts, in document pixels (the block's own top
    can sit on one page while its first line, too tall for the rest of it, is on the next)."""
    lines = block.layout()
    if lines.lineCount():
        return lines.position().y() + lines.lineAt(0).y()
    return layout.blockBoundingRect(block).top()


def keep_headings_with_what_follows(document) -> int:
    """Move every heading that would end a page, its text or plots starting on the next,
    to that next page (a page break before it). ``document`` must have its page size set.

    Returns
    -------
    int, the headings moved
    """
    from qtpy.QtGui import QTextCursor, QTextFormat

    layout = document.documentLayout()
    height = document.pageSize().height()
    document.pageCount()  # lays the whole document out (it is otherwise done lazily)
    moved = 0
    block = document.begin()
    while block.isValid():
        following = block.next()
        if block.blockFormat().headingLevel() and following.isValid():
            page = int(_first_line_top(block, layout) // height)
            if int(_first_line_top(following, layout) // height) > page:
                fmt = block.blockFormat()
                fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
                QTextCursor(block).setBlockFormat(fmt)
                document.pageCount()  # a break moves what follows: lay it out again
                moved += 1
        block = following
    return moved


def write_pdf(html: str, output: str | Path) -> Path:
    """Print ``html`` (the report's HTML, inline SVG plots) to an A4 PDF at ``output``.

    Written to a temporary file next to ``output`` and moved in place when complete.

    Returns
    -------
    Path of the PDF
    """
    _application()
    from qtpy.QtCore import QSizeF
    from qtpy.QtGui import QPageSize
    from qtpy.QtPrintSupport import QPrinter

    document = _document(html)
    output = Path(output)
    with atomic_path(output) as tmp:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setOutputFileName(str(tmp))
        printer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
        printer.setPageMargins(
            MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM, QPrinter.Unit.Millimeter
        )
        # Lay the pages out in CSS pixels (1/96 inch), the unit of the report's sizes;
        # Qt scales them to the printer's resolution.
        page = printer.pageRect(QPrinter.Unit.Inch)
        document.setPageSize(QSizeF(96 * page.width(), 96 * page.height()))
        keep_headings_with_what_follows(document)
        document.print_(printer)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise EchoIOError(output, "Qt wrote no PDF (is the folder writable?)")
    return output
