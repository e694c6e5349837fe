"""The 5-level evacuation scale (警戒レベル) as revised on 20 May 2021, when 避難勧告 was abolished and
避難指示 became the level-4 call for everyone. The next revision (the new 防災気象情報) is a new
LevelScheme row made active, not an edit of this one: alerts keep the words they were issued with."""

import datetime

from django.db import migrations

VERSION = "2021-05"
LEVELS = [
    (1, "早期注意情報", "Early warning information",
     "災害への心構えを高める", "Be prepared for a possible disaster"),
    (2, "避難行動の確認", "Check how to evacuate",
     "ハザードマップ等により自らの避難行動を確認", "Check the hazard map, your shelter and the way there"),
    (3, "高齢者等避難", "Older people and those needing help evacuate",
     "危険な場所から高齢者等は避難", "Older people and those who need help: leave dangerous places now; everyone else, get ready"),
    (4, "避難指示", "Evacuate all",
     "危険な場所から全員避難", "Everyone: leave dangerous places now"),
    (5, "緊急安全確保", "Emergency: secure your safety now",
     "命の危険 直ちに安全確保!", "Lives are in danger: secure your safety immediately"),
]


def seed(apps, schema_editor):
    LevelScheme = apps.get_model("alerts", "LevelScheme")
    LevelDefinition = apps.get_model("alerts", "LevelDefinition")
    scheme, _ = LevelScheme.objects.get_or_create(
        version=VERSION,
        defaults={
            "name": "警戒レベル (2021年5月改定) / 5-level evacuation scale, May 2021 revision",
            "valid_from": datetime.date(2021, 5, 20),
            "is_active": not LevelScheme.objects.filter(is_active=True).exists(),
        },
    )
    for level, name_ja, name_en, action_ja, action_en in LEVELS:
        LevelDefinition.objects.update_or_create(
            scheme=scheme,
            level=level,
            defaults={"name_ja": name_ja, "name_en": name_en, "action_ja": action_ja, "action_en": action_en},
        )


def unseed(apps, schema_editor):
    LevelScheme = apps.get_model("alerts", "LevelScheme")
    Alert = apps.get_model("alerts", "Alert")
    if not Alert.objects.filter(level_scheme__version=VERSION).exists():
        LevelScheme.objects.filter(version=VERSION).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
