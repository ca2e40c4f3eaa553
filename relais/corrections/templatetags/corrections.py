from django import template

from relais.corrections.rejections import names_identity

register = template.Library()


@register.filter
def identity_rejection(reason: str) -> bool:
    return names_identity(reason)
