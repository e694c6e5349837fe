"""The public snapshot document's shape, for the OpenAPI schema (the view serves prebuilt bytes)."""

from rest_framework import serializers


class LiveSerializer(serializers.Serializer):
    transport = serializers.ChoiceField(choices=["websocket", "poll"])
    interval = serializers.IntegerField(help_text="Seconds between polls; also the publish tick.")
    websocket = serializers.CharField(help_text="Path of the live websocket for public readers.")


class NoticeSerializer(serializers.Serializer):
    ja = serializers.CharField()
    en = serializers.CharField()


class PublicSnapshotSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="Live sequence number the document is current to.")
    stream = serializers.CharField()
    tick = serializers.IntegerField(help_text="Seconds: the document changes at most once per tick.")
    mode = serializers.ChoiceField(choices=["map", "minimal"])
    notice = NoticeSerializer(allow_null=True)
    live = LiveSerializer()
    layers = serializers.ListField(child=serializers.CharField())
    features = serializers.ListField(child=serializers.DictField(), help_text="Public stations (GeoJSON features).")
    alerts = serializers.ListField(child=serializers.DictField(), help_text="Public alerts in force.")
    shelters = serializers.ListField(child=serializers.DictField(), help_text="Shelters (GeoJSON features).")
