# The dependencies of the tapegrad library and of its package (tapegradConfig.cmake includes
# this file too), each found by name with the Debian package that provides it, so that a
# missing one stops the configure with what to install instead of a CMake search path.

# Finds the CMake package NAME (extra arguments go to find_package). When it is missing: a
# fatal error naming DEBIAN_PACKAGE, or, while tapegradConfig.cmake loads, "tapegrad not found"
# with that message (so find_package(tapegrad QUIET) stays quiet). A macro: find_package's
# variables and return() must act in the caller's scope.
macro(tapegrad_require name debian_package)
  find_package(${name} ${ARGN} QUIET)
  _tapegrad_found_or_stop(${name} ${debian_package})
endmacro()

# The same for the pkg-config module MODULE, as the imported target PkgConfig::<PREFIX>.
macro(tapegrad_require_pkgconfig prefix module debian_package)
  tapegrad_require(PkgConfig pkgconf)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${module})
  _tapegrad_found_or_stop(${prefix} ${debian_package})
endmacro()

macro(_tapegrad_found_or_stop name debian_package)
  if(NOT ${name}_FOUND)
    set(_tapegrad_missing "tapegrad needs ${name}, which was not found: install the Debian package \
${debian_package} (apt-get install ${debian_package}; scripts/install-deps installs all that tapegrad needs)")
    if(_tapegrad_loading_package)
      unset(_tapegrad_loading_package)
      set(tapegrad_NOT_FOUND_MESSAGE "${_tapegrad_missing}")
      set(tapegrad_FOUND FALSE)
      return()
    endif()
    message(FATAL_ERROR "${_tapegrad_missing}")
  endif()
endmacro()

# What the library itself needs: the headers of xtensor (with xsimd) in its interface, zlib,
# libzip and OpenBLAS in its link. Nothing of the examples, tests or benches. (libzip through
# pkg-config: Debian's libzip CMake config fails unless its command-line tools are installed.)
macro(tapegrad_find_library_dependencies)
  tapegrad_require(xtl xtl-dev)
  tapegrad_require(xsimd libxsimd-dev)
  tapegrad_require(xtensor libxtensor-dev)
  tapegrad_require(ZLIB zlib1g-dev)
  tapegrad_require_pkgconfig(LIBZIP libzip libzip-dev)
  tapegrad_require(OpenBLAS libopenblas-dev CONFIG)
  # OpenBLAS 0.3.21's config gives only variables (absolute paths of this machine). An imported
  # target, made again from them wherever the package is found, keeps those paths out of the
  # exported interface, so an install moved to another machine or prefix links that machine's
  # OpenBLAS. Newer OpenBLAS configs define the target themselves.
  if(NOT TARGET OpenBLAS::OpenBLAS)
    add_library(OpenBLAS::OpenBLAS INTERFACE IMPORTED)
    set_target_properties(OpenBLAS::OpenBLAS PROPERTIES
      INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}")
  endif()
endmacro()
