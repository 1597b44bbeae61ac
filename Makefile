# Lambda builds for `sam build`. Every function in template.yaml has
#   Metadata: { BuildMethod: makefile, ContextPath: . }
# so SAM runs `make build-<LogicalId>` with this Makefile, in a scratch copy of the function's
# CodeUri (functions/<crate>), with ARTIFACTS_DIR set. No per-function rule is needed here.
#
# Why one build: each function's own `cargo lambda build` resolves features for that crate
# alone, so the shared dependencies were compiled again for every function (17:52 for 8).
# Here the first target builds EVERY crate under functions/ in one cargo-lambda build (one
# feature set, each dependency compiled once); the others find it up to date (about a second)
# and only copy their bootstrap.
#
# Architecture: FLEXBRIDGE_ARCH (arm64 or x86_64) when set, else the function's `architecture`
# in SAM's build graph (<build dir>/../build.toml, written before any function is built), i.e.
# the template's Architecture parameter.

ROOT := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(ROOT)/target)
# The package name of every crate under functions/ (its binary has the same name).
PACKAGE_NAME = awk -F'"' 'FNR==1{p=0} /^\[package\]/{p=1} p && /^name *=/{print $$2; p=0}'
FUNCTION_PACKAGES := $(shell $(PACKAGE_NAME) $(ROOT)/functions/*/Cargo.toml)
# Cargo profile of the packages: `lambda` (Cargo.toml says why), or `release` for opt-level 3.
LAMBDA_PROFILE ?= lambda

build-%:
	@set -eu; \
	pkg=$$($(PACKAGE_NAME) Cargo.toml); \
	arch="$${FLEXBRIDGE_ARCH:-}"; \
	graph="$(ARTIFACTS_DIR)/../../build.toml"; \
	if [ -z "$$arch" ] && [ -f "$$graph" ]; then \
	  arch=$$(awk -v id='"$*"' '/^\[/{a=""} /^architecture *=/{gsub(/[" ]/,"",$$3); a=$$3} /^functions *=/ && index($$0,id){print a; exit}' "$$graph"); \
	fi; \
	case "$$arch" in \
	  arm64) flag=--arm64 ;; \
	  x86_64) flag=--x86-64 ;; \
	  *) echo "flexbridge: cannot tell the architecture of $*; set FLEXBRIDGE_ARCH=arm64|x86_64" >&2; exit 2 ;; \
	esac; \
	echo "flexbridge: $* = $$pkg ($$arch); one cargo-lambda build of: $(FUNCTION_PACKAGES)"; \
	cd "$(ROOT)" && cargo lambda build --profile $(LAMBDA_PROFILE) --locked $$flag $(addprefix -p ,$(FUNCTION_PACKAGES)); \
	cp "$(TARGET_DIR)/lambda/$$pkg/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"

.PHONY: lambdas
# The same build without SAM: `make lambdas FLEXBRIDGE_ARCH=x86_64` → target/lambda/<crate>/bootstrap.
lambdas:
	cd "$(ROOT)" && cargo lambda build --profile $(LAMBDA_PROFILE) --locked \
	  $(if $(filter arm64,$(FLEXBRIDGE_ARCH)),--arm64,--x86-64) $(addprefix -p ,$(FUNCTION_PACKAGES))
