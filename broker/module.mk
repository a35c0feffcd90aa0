# broker/: ringlogd (the native protocol server, topics, HTTP admin and metrics).
BROKER_SRCS += broker/arena.c broker/frame.c broker/config.c broker/metalog.c broker/topics.c \
               broker/shard.c broker/api.c broker/http.c
