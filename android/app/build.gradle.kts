plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "com.splatcast.player"
    compileSdk = 35
    // The NDK cargo-ndk builds with; keep the two in step (see ../README.md).
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "com.splatcast.player"
        // Vulkan 1.1 or GLES 3.1 with compute shaders: Android 9+ devices.
        minSdk = 28
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += listOf("arm64-v8a")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug")
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    // libsplatcast_android.so is put here by cargo-ndk (see ../README.md).
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
}

dependencies {
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.core:core-ktx:1.13.1")
    // android-activity 0.6 (bevy 0.19's winit backend) is written against GameActivity 2.0.2's
    // native glue; other versions break the JNI interface.
    implementation("androidx.games:games-activity:2.0.2")
}
