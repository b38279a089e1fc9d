from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from .models import Document


@login_required
def document(request, pk):
    doc = get_object_or_404(Document, pk=pk)
    return render(request, "docs/document.html", {"doc": doc})


@login_required
def document_jinja(request, pk):
    doc = get_object_or_404(Document, pk=pk)
    return render(request, "docs/document.jinja", {"doc": doc}, using="jinja2")


@login_required
def show(request, show):
    return render(request, "docs/show.html", {"show": show})
