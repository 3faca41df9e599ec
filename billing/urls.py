from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
    path("invoices/<uuid:invoice_id>/print/", views.invoice_print, name="invoice-print"),
]
