"""The portal's one form: a dispute. Acknowledge and "removed" are single buttons (POST + CSRF)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from compliance.models import Dispute


class DisputeForm(forms.Form):
    reason = forms.ChoiceField(label=_("Reason"), choices=Dispute.Reason.choices, widget=forms.RadioSelect)
    removed_at = forms.DateTimeField(
        label=_("Removed at (Europe/Amsterdam)"),
        required=False,
        help_text=_("for 'already removed', e.g. 2026-03-01 14:30"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"],
    )
    text = forms.CharField(
        label=_("Explanation"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_("required for 'other'; e.g. which customer or CDN, or what you did"),
    )


class DisputeAnswerForm(forms.ModelForm):
    """The analyst's answer (admin)."""

    class Meta:
        model = Dispute
        fields = ["state", "answer"]
