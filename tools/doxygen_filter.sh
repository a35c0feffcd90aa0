#!/bin/sh
# Doxygen input filter for client/ringlog.h (make docs): the header's comments are plain C
# comments, so the source stays readable without a documentation tool. For Doxygen, the
# opening comment becomes the file's description, a comment line before a declaration becomes
# its documentation, and a comment after a member or value documents that member. Section
# banners ("--- producer ---") stay plain comments.
sed -e '0,/^\/\*$/s//\/** \\file/' \
    -e 's|^\(  *\)/\* |\1/** |' \
    -e 's|^/\* \([^-]\)|/** \1|' \
    -e 's|\([;,{]\) */\* |\1 /**< |' "$1"
