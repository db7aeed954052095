// OpenBLAS's CBLAS interface plus its thread-count controls (Debian: libopenblas-dev).
#pragma once
#include <cblas.h>
