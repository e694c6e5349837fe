# Mizumori — developer entry points. GNU make.
#
#   make demo    install, migrate, seed the fictional demo towns, start the site and the storm simulator
#   make test    install, Django system checks, migration check, pytest (PYTEST_ARGS="..." passes through)
#
# Both use whatever DATABASE_URL / REDIS_URL are in the environment; with none set they run on the
# embedded default (SQLite in var/, in-memory channel layer, eager Celery). See README.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# FIWARE's filip client pins versions that clash with ours; the NGSI interop test runs it from here.
FILIP_VENV := var/venv-filip
FILIP_STAMP := $(FILIP_VENV)/.installed

PORT ?= 8000
# make serve PROXY=1: nginx in front on PORT (deploy/nginx.conf.template), the application on PORT+1.
PROXY ?= 0
DEMO_PASSWORD ?= mizumori-demo
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv install test demo serve clean bench messages

help:
	@echo "make demo     start the demo site on http://127.0.0.1:$(PORT)/ with the storm simulator (Ctrl-C stops both)"
	@echo "make test     ruff, manage.py check, makemigrations --check, pytest (PYTEST_ARGS='-k ingest' passes through)"
	@echo "make serve    the production process set (ASGI, change-log workers, Celery worker and beat, MQTT) on DATABASE_URL / REDIS_URL; PROXY=1 puts nginx in front"
	@echo "make install  create .venv and install requirements-dev.txt (again only when requirements*.txt change)"
	@echo "make bench    end-to-end benchmark on PostgreSQL + Redis (bench/e2e.py, with bench/run.py): one table in var/bench/latest.md"
	@echo "make clean    remove var/ (the embedded SQLite database) and staticfiles/; keeps .venv"
	@echo "make messages the gettext catalogs: new strings of the code into locale/*/LC_MESSAGES/*.po, then the .mo files (needs Debian's gettext)"

venv install: $(STAMP)

# Re-runs only when a requirements file is newer than the stamp.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

$(FILIP_STAMP): requirements-filip.txt
	test -x $(FILIP_VENV)/bin/python || $(PYTHON) -m venv $(FILIP_VENV)
	$(FILIP_VENV)/bin/python -m pip install -r requirements-filip.txt
	touch $@

# The gettext catalogs (docs/i18n.md): every language's .po gets the code's new msgids (untranslated),
# then the .mo files Django reads are compiled. The .mo files are committed, so a checkout works
# without gettext; tests/test_i18n.py fails on an untranslated or fuzzy ja/en string and on a .mo
# that does not match its .po. File-only locations keep line moves out of the catalogs' diffs.
LOCALES := ja en zh_Hans
MESSAGES_IGNORE := --ignore=.venv --ignore=var --ignore=staticfiles --ignore=tests --ignore=bench \
	--ignore=node_modules --ignore=test-artifacts --ignore=static/vendor --ignore=deploy
messages: $(STAMP)
	$(BIN)/python manage.py makemessages $(addprefix -l ,$(LOCALES)) $(MESSAGES_IGNORE) --add-location=file --no-obsolete
	$(BIN)/python manage.py makemessages -d djangojs $(addprefix -l ,$(LOCALES)) $(MESSAGES_IGNORE) --add-location=file --no-obsolete
	$(BIN)/python manage.py compilemessages $(addprefix -l ,$(LOCALES)) $(MESSAGES_IGNORE)

# Any non-zero exit fails the target, including pytest's 5 ("no tests collected").
test: $(STAMP) $(FILIP_STAMP) messages
	$(BIN)/ruff check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

demo: export DEBUG := 0
demo: export MIZUMORI_DEMO_BANNER := 1
demo: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --password '$(DEMO_PASSWORD)'
	$(BIN)/python manage.py collectstatic --noinput
	PORT='$(PORT)' DEMO_PASSWORD='$(DEMO_PASSWORD)' bash bin/demo

# The production process set in the foreground (bin/serve); needs DATABASE_URL and REDIS_URL.
serve: export DEBUG := 0
serve: $(STAMP)
	PORT='$(PORT)' PROXY='$(PROXY)' bash bin/serve

clean:
	rm -rf var staticfiles

# Drops and re-creates the database BENCH_DATABASE_URL names (default mizumori_bench on 127.0.0.1);
# BENCH_ARGS="--quick" or "--only a,c" pass through. See docs/performance.md.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/e2e.py $(BENCH_ARGS)
